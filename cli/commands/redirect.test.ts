import t from 'tap';
import { routableIpv6Addresses } from './redirect.ts';

const address = (address: string, family: 'IPv4' | 'IPv6', internal = false) => ({
  address,
  family,
  internal,
  netmask: '',
  mac: '00:00:00:00:00:00',
  cidr: null,
  ...(family === 'IPv6' ? { scopeid: 0 } : {}),
});

t.test(
  'a pod with a routable IPv6 address is one whose IPv6 traffic must be redirected too (fail closed)',
  async (t) => {
    t.same(
      routableIpv6Addresses({
        lo: [address('127.0.0.1', 'IPv4', true), address('::1', 'IPv6', true)],
        eth0: [
          address('10.0.1.5', 'IPv4'),
          address('fe80::1c2d:3eff:fe4f:5a6b', 'IPv6'),
          address('fd00:10:244::5', 'IPv6'),
        ],
      } as never),
      ['fd00:10:244::5'],
    );
    t.same(
      routableIpv6Addresses({
        eth0: [address('10.0.1.5', 'IPv4'), address('fe80::1', 'IPv6')],
      } as never),
      [],
      'loopback and link-local only: IPv4 is all the pod sends',
    );
  },
);
