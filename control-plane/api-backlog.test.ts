import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { startTestMesh } from '../test/helpers.ts';
import { API_LISTEN_BACKLOG } from './control-plane.ts';

t.test(
  'the control plane asks for an accept queue a mass reconnect of sidecars fits in',
  async (t) => {
    const mesh = await startTestMesh(t, '');
    const out = execFileSync('ss', ['-ltnH', `sport = :${mesh.controlPlane.apiPort}`], {
      encoding: 'utf8',
    });
    // The kernel caps any listen backlog at net.core.somaxconn.
    const cap = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    t.equal(Number(out.trim().split(/\s+/)[2]), Math.min(API_LISTEN_BACKLOG, cap));
    t.ok(API_LISTEN_BACKLOG > 511, "more than Node's default");
  },
);
