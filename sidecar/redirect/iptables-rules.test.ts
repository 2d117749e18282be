import t from 'tap';
import { redirectRules } from './iptables-rules.ts';

const OPTIONS = {
  inboundPort: 15006,
  outboundPort: 15001,
  proxyUid: 1337,
  excludeInboundPorts: [15021, 9090],
  excludeOutboundPorts: [5432],
  excludeOutboundCidrs: ['169.254.169.254/32', 'fd00:ec2::254/128'],
};

t.test('inbound goes to the inbound port except its own and the excluded ports', async (t) => {
  const rules = redirectRules(OPTIONS).split('\n');
  const inbound = rules.filter((r) => r.startsWith('-A POSTERN_INBOUND'));
  t.same(inbound, [
    '-A POSTERN_INBOUND -p tcp --dport 15006 -j RETURN',
    '-A POSTERN_INBOUND -p tcp --dport 15021 -j RETURN',
    '-A POSTERN_INBOUND -p tcp --dport 9090 -j RETURN',
    '-A POSTERN_INBOUND -p tcp -j POSTERN_IN_REDIRECT',
  ]);
  t.ok(rules.includes('-A POSTERN_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006'));
});

t.test(
  "outbound goes to the outbound port except the sidecar's own, loopback and the exclusions of its family",
  async (t) => {
    const v4 = redirectRules(OPTIONS, 4)
      .split('\n')
      .filter((r) => r.startsWith('-A POSTERN_OUTPUT'));
    t.same(v4, [
      '-A POSTERN_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A POSTERN_OUTPUT -d 127.0.0.1/32 -j RETURN',
      '-A POSTERN_OUTPUT -p tcp --dport 53 -j RETURN',
      '-A POSTERN_OUTPUT -p tcp --dport 5432 -j RETURN',
      '-A POSTERN_OUTPUT -d 169.254.169.254/32 -j RETURN',
      '-A POSTERN_OUTPUT -p tcp -j POSTERN_REDIRECT',
    ]);
    const v6 = redirectRules(OPTIONS, 6);
    t.match(v6, /-A POSTERN_OUTPUT -d ::1\/128 -j RETURN/);
    t.match(v6, /-A POSTERN_OUTPUT -d fd00:ec2::254\/128 -j RETURN/);
    t.notMatch(v6, /169\.254/);
  },
);

t.test('one nat table transaction, chains declared before use', async (t) => {
  const rules = redirectRules(OPTIONS);
  t.match(
    rules,
    /^\*nat\n:POSTERN_INBOUND - \[0:0\]\n:POSTERN_IN_REDIRECT - \[0:0\]\n:POSTERN_OUTPUT - \[0:0\]\n:POSTERN_REDIRECT - \[0:0\]\n/,
  );
  t.match(rules, /COMMIT\n$/);
});
