import t from 'tap';
import { throttleKey } from '../../src/client/socks/login-throttle';

t.test('login failures count per address off loopback; per known user name on loopback, unknown names together', async (t) => {
  const alice = Buffer.from('alice');
  t.equal(throttleKey('192.0.2.7', alice, true), throttleKey('192.0.2.7', Buffer.from('bob'), true), 'off loopback: the address, whoever');
  t.not(throttleKey('127.0.0.1', alice, true), throttleKey('127.0.0.1', Buffer.from('bob'), true), 'on loopback: each known user apart');
  t.equal(throttleKey('127.0.0.1', alice, true), throttleKey('127.9.8.7', alice, true), 'any 127.x is the same');
  t.equal(throttleKey('::ffff:127.0.0.1', alice, true), throttleKey('::1', alice, true), 'and ::1, and the mapped spelling');
  const made = new Set(Array.from({ length: 100 }, (_, i) => throttleKey('127.0.0.1', Buffer.from(`x${i}`), false)));
  t.equal(made.size, 1, 'made-up names share one count: they cannot crowd a real user out of the bounded memory');
});
