/** Property-based fuzzing of the path canonicaliser (fast-check; runs: test/fuzz/runs.ts). */
import fc from 'fast-check';
import t from 'tap';
import { fuzzParameters } from '../test/fuzz/runs.ts';
import { canonicalTarget } from './canonical-path.ts';

/** Targets built from the pieces attacks are made of, more often than random bytes would find them. */
const pieces = fc.constantFrom(
  '/',
  '//',
  '.',
  '..',
  '%2e',
  '%2E',
  '%2f',
  '%2F',
  '%5c',
  '%00',
  '%25',
  '%252F',
  '%3B',
  ';',
  '\\',
  '?',
  '#',
  'a',
  'Z',
  '~',
  '%41',
  '%7e',
  '%c3%a9',
  '%c0%af',
  '%e0%80%af',
  ' ',
  '\t',
  'é',
  '@',
  ':',
);
const target = fc.oneof(
  fc.array(pieces, { maxLength: 12 }).map((parts) => `/${parts.join('')}`),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

t.test(
  'whatever the target, canonicalisation answers (never throws) with a canonical path or a reason',
  async (t) => {
    fc.assert(
      fc.property(target, (raw) => {
        const result = canonicalTarget(raw);
        if (!result.ok) return typeof result.reason === 'string' && result.reason.length > 0;
        const { path } = result.target;
        return (
          path.startsWith('/') &&
          !path.includes('//') &&
          !/(^|\/)\.\.?(\/|$)/.test(path) &&
          !/%2f|%5c|%00/i.test(path) &&
          !/[\\#\s;]/.test(path) &&
          !/[^\x21-\x7e]/.test(path) &&
          !/%25[0-9a-f]{2}/i.test(path)
        );
      }),
      fuzzParameters,
    );
    t.pass();
  },
);

t.test('a canonical path canonicalises to itself (one spelling per path)', async (t) => {
  fc.assert(
    fc.property(target, (raw) => {
      const first = canonicalTarget(raw);
      if (!first.ok) return true;
      const again = canonicalTarget(first.target.path + first.target.search);
      return (
        again.ok &&
        again.target.path === first.target.path &&
        again.target.search === first.target.search
      );
    }),
    fuzzParameters,
  );
  t.pass();
});
