/**
 * The TLS every listener and every client of ours speaks (DESIGN.md,
 * Identity): TLS 1.2 at least, and only AEAD suites with forward secrecy.
 * TLS 1.3's suites are all AEAD; for TLS 1.2 that means ECDHE with AES-GCM
 * or ChaCha20-Poly1305. Node's defaults also offer TLS 1.2 CBC suites
 * (ECDHE-ECDSA-AES128-SHA256 and the like), which a downgraded or old peer
 * could settle on: refused here on both sides.
 */
const TLS13_SUITES = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
];
const TLS12_AEAD_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

/** Spread into tls/https server options, undici `connect` options and https agents alike. */
export const TLS_POLICY = Object.freeze({
  minVersion: 'TLSv1.2',
  ciphers: [...TLS13_SUITES, ...TLS12_AEAD_SUITES].join(':'),
} as const);
