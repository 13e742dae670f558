/** SOCKS5 (RFC 1928) and RFC 1929 messages, the listener's logins, and the -D/--socks settings. */
import t from 'tap';
import { join } from 'node:path';
import {
  encodeAuthStatus, encodeMethod, encodeReply, encodeUdp, MAX_MESSAGE, parseAuth, parseGreeting, parseRequest, parseUdp, targetOf,
} from '../../src/client/socks/messages';
import { SocksLogins } from '../../src/client/socks/auth';
import { isLoopbackBind as isLoopbackHost } from '../../src/config/tunnels';
import { resolveConfig } from '../../src/config/load';
import { TwsError } from '../../src/util/errors';

const b = (...bytes: number[]): Buffer => Buffer.from(bytes);
const port = (p: number): number[] => [p >> 8, p & 0xff];

t.test('greeting: incomplete, complete with what follows, wrong version, no methods', async (t) => {
  t.same(parseGreeting(b()), { kind: 'more' });
  t.same(parseGreeting(b(5)), { kind: 'more' });
  t.same(parseGreeting(b(5, 2, 0)), { kind: 'more' }, 'one of two methods');
  t.same(parseGreeting(b(5, 2, 0, 2, 1, 0)), { kind: 'ok', value: { methods: [0, 2] }, used: 4 }, 'pipelined bytes are not used');
  t.match(parseGreeting(b(4, 1, 0)), { kind: 'bad', reply: undefined }, 'SOCKS4: no SOCKS5 answer');
  t.match(parseGreeting(b(5, 0)), { kind: 'bad', reply: 0xff });
  t.same(encodeMethod(2), b(5, 2));
});

t.test('username/password (RFC 1929)', async (t) => {
  const msg = Buffer.concat([b(1, 5), Buffer.from('alice'), b(3), Buffer.from('pw:')]);
  for (let i = 0; i < msg.length; i++) t.same(parseAuth(msg.subarray(0, i)), { kind: 'more' }, `${i} bytes`);
  const r = parseAuth(msg);
  t.equal(r.kind, 'ok');
  if (r.kind === 'ok') {
    t.equal(r.value.user.toString(), 'alice');
    t.equal(r.value.pass.toString(), 'pw:');
    t.equal(r.used, msg.length);
  }
  t.match(parseAuth(b(5, 1, 0x61, 1, 0x62)), { kind: 'bad' }, 'wrong sub-negotiation version');
  t.match(parseAuth(b(1, 0, 1, 0x62)), { kind: 'bad' }, 'empty user');
  t.match(parseAuth(b(1, 1, 0x61, 0)), { kind: 'bad' }, 'empty password');
  t.same(encodeAuthStatus(true), b(1, 0));
  t.same(encodeAuthStatus(false), b(1, 1));
});

t.test('requests: IPv4, IPv6, domain name; bad version, reserved byte, address type, name', async (t) => {
  const v4 = parseRequest(b(5, 1, 0, 1, 127, 0, 0, 1, ...port(8080)));
  t.match(v4, { kind: 'ok', value: { cmd: 1, atyp: 1, host: '127.0.0.1', port: 8080 }, used: 10 });
  if (v4.kind === 'ok') t.equal(targetOf(v4.value), '127.0.0.1:8080');
  const v6 = parseRequest(b(5, 1, 0, 4, ...new Array(15).fill(0), 1, ...port(443)));
  t.match(v6, { kind: 'ok', value: { atyp: 4, host: '::1', port: 443 }, used: 22 });
  if (v6.kind === 'ok') t.equal(targetOf(v6.value), '[::1]:443', 'IPv6 targets in brackets');
  const v6b = parseRequest(b(5, 1, 0, 4, 0xfd, 0, ...new Array(12).fill(0), 0x12, 0x34, ...port(1)));
  t.match(v6b, { kind: 'ok', value: { host: 'fd00::1234' } }, 'canonical spelling');
  const name = Buffer.from('db.internal');
  const dn = parseRequest(Buffer.concat([b(5, 3, 0, 3, name.length), name, b(...port(5432), 0x99)]));
  t.match(dn, { kind: 'ok', value: { cmd: 3, atyp: 3, host: 'db.internal', port: 5432 }, used: 5 + name.length + 2 });
  const full = Buffer.concat([b(5, 1, 0, 3, name.length), name, b(...port(5432))]);
  for (let i = 0; i < full.length; i++) t.same(parseRequest(full.subarray(0, i)), { kind: 'more' }, `${i} bytes: more`);
  t.match(parseRequest(b(4, 1, 0, 1, 1, 2, 3, 4, 0, 80)), { kind: 'bad', reply: 1 });
  t.match(parseRequest(b(5, 1, 1, 1, 1, 2, 3, 4, 0, 80)), { kind: 'bad', reply: 1 }, 'reserved byte');
  t.match(parseRequest(b(5, 1, 0, 9, 1, 2, 3, 4, 0, 80)), { kind: 'bad', reply: 8 }, 'address type not supported');
  const evil = Buffer.from('a:b\n[x]');
  t.match(parseRequest(Buffer.concat([b(5, 1, 0, 3, evil.length), evil, b(0, 80)])), { kind: 'bad', reply: 1 }, 'a name that is no host name');
  t.match(parseRequest(b(5, 1, 0, 3, 0, 0, 80)), { kind: 'bad', reply: 1 }, 'empty name');
  const longest = Buffer.concat([b(5, 1, 0, 3, 255), Buffer.alloc(255, 0x61), b(0, 80)]);
  t.equal(longest.length, MAX_MESSAGE, 'MAX_MESSAGE is the longest request');
  t.match(parseRequest(longest), { kind: 'ok', used: MAX_MESSAGE });
});

t.test('replies and UDP headers encode each address type', async (t) => {
  t.same(encodeReply(0), b(5, 0, 0, 1, 0, 0, 0, 0, 0, 0));
  t.same(encodeReply(5, '10.1.2.3', 1080), b(5, 5, 0, 1, 10, 1, 2, 3, ...port(1080)));
  t.same(encodeReply(0, '::1', 53), b(5, 0, 0, 4, ...new Array(15).fill(0), 1, 0, 53));
  t.same(encodeReply(0, '::ffff:1.2.3.4', 1).subarray(3), b(4, ...new Array(10).fill(0), 0xff, 0xff, 1, 2, 3, 4, 0, 1));
  t.same(encodeUdp('ns.example', 53, Buffer.from('q')), Buffer.concat([b(0, 0, 0, 3, 10), Buffer.from('ns.example'), b(0, 53), Buffer.from('q')]));
  const round = parseUdp(encodeUdp('fd00::5', 5353, Buffer.from('payload')));
  t.match(round, { kind: 'ok', value: { atyp: 4, host: 'fd00::5', port: 5353 } });
  if (round.kind === 'ok') t.equal(round.value.data.toString(), 'payload');
  t.match(parseUdp(b(0, 0, 1, 1, 1, 2, 3, 4, 0, 53, 9)), { kind: 'bad', why: /FRAG/ }, 'fragments are dropped');
  t.match(parseUdp(b(0, 1, 0, 1, 1, 2, 3, 4, 0, 53)), { kind: 'bad' }, 'reserved bytes');
  t.match(parseUdp(b(0, 0, 0, 1, 1, 2)), { kind: 'bad' }, 'truncated header');
  t.match(parseUdp(b(0, 0, 0)), { kind: 'bad' });
});

t.test('logins file: user:password lines, comments; errors never show a password', async (t) => {
  const logins = SocksLogins.parse('# users\nalice:s3cret:with:colons\n\nbob:pw\n', 'f');
  t.ok(logins.check(Buffer.from('alice'), Buffer.from('s3cret:with:colons')));
  t.ok(logins.check(Buffer.from('bob'), Buffer.from('pw')));
  t.notOk(logins.check(Buffer.from('bob'), Buffer.from('pw2')));
  t.notOk(logins.check(Buffer.from('carol'), Buffer.from('pw')));
  t.throws(() => SocksLogins.parse('nocolon-secretvalue\n', 'f'), { code: 'TWS_ERR_CONFIG', message: /line 1: expected user:password/ });
  try {
    SocksLogins.parse('alice:hunter2\nalice:hunter3\n', 'f');
    t.fail('a user given twice');
  } catch (err) {
    t.ok(err instanceof TwsError);
    t.notMatch((err as Error).message, /hunter/);
  }
  t.throws(() => SocksLogins.parse('# nothing\n', 'f'), { message: /no user:password line/ });
  t.throws(() => SocksLogins.fromFile('/nonexistent/socks-auth'), { code: 'TWS_ERR_CONFIG', message: /ENOENT/ });
});

t.test('loopback hosts', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) t.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '1::1']) t.notOk(isLoopbackHost(h), h);
});

t.test('-D/--socks and --socks-auth settings', async (t) => {
  const client = (flags: Record<string, unknown>, file?: Record<string, unknown>) =>
    resolveConfig('client', { env: {}, file, flags: { server: 'ws://127.0.0.1:1/', passwd: 'x', ...flags } });
  t.same(client({ socks: '1080' }).socks, { host: '127.0.0.1', port: 1080 }, 'a client may have only a SOCKS listener');
  t.same(client({ socks: '[::1]:1080' }).socks, { host: '::1', port: 1080 });
  t.same(client({}, { socks: 1081 }).socks, { host: '127.0.0.1', port: 1081 }, 'YAML number');
  t.throws(() => client({ socks: 'nope' }), { code: 'TWS_ERR_CONFIG', message: /flag -D\/--socks/ });
  t.throws(() => client({ socks: '1080', tunnels: ['1080:h:1'] }), { message: /both listen on tcp 127\.0\.0\.1:1080/ });
  t.throws(() => client({ socksAuth: join(__dirname, 'x') }), { message: /give -D\/--socks/ });
  t.throws(() => client({}), { message: /-D\/--socks/ }, 'the missing-tunnel message names -D');
});
