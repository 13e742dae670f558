/**
 * The client's SOCKS5 listener (-D/--socks): curl through it with sha256 of a
 * large body, logins (--socks-auth), the reply codes mapped from the server's
 * RESETs, UDP ASSOCIATE carrying a DNS query, and hostile input.
 */
import t from 'tap';
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer, Server as HttpServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createClient, createServer } from '../../src/api';
import { freePort, hangingTarget, sha256 } from '../helpers/net';
import { engines, Proc, runCli, runToExit as tws } from '../helpers/procs';
import {
  closedWithin, dnsAnswer, dnsQuery, dnsResponder, openSocket, readBytes, socksAddress, socksRequest,
} from '../helpers/socks';
import { waitFor } from '../helpers/wait';
import { needs, toolEnv } from '../helpers/tools';

/** curl drives these tests (a client nobody here wrote); without it they skip with one line. */
const noCurl = needs('curl');

const BODY = randomBytes(6 * 1024 * 1024 + 17);

/** An HTTP server on both loopbacks (when IPv6 works) serving BODY at /big. */
async function httpServer(t: Test): Promise<{ port: number; v6: boolean }> {
  const serve = (srv: HttpServer): HttpServer => srv.on('request', (_req, res) => {
    res.writeHead(200, { 'content-length': BODY.length });
    res.end(BODY);
  });
  const v4 = serve(createHttpServer());
  await new Promise<void>((r) => v4.listen(0, '127.0.0.1', () => r()));
  const port = (v4.address() as AddressInfo).port;
  const v6 = serve(createHttpServer());
  const v6ok = await new Promise<boolean>((r) => {
    v6.once('error', () => r(false));
    v6.listen(port, '::1', () => r(true));
  });
  t.teardown(() => {
    v4.closeAllConnections();
    v4.close();
    if (v6ok) {
      v6.closeAllConnections();
      v6.close();
    }
  });
  return { port, v6: v6ok };
}

/** Runs curl; resolves with its exit code and what it wrote to stdout. */
function curl(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; body: Buffer; err: string }> {
  return new Promise((resolve) => {
    const p = spawn('curl', ['-sS', '--max-time', String(timeoutMs / 1000), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: toolEnv() });
    const chunks: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (c: Buffer) => chunks.push(c));
    p.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs + 5000);
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, body: Buffer.concat(chunks), err }); });
  });
}

async function start(t: Test, serverEngine: string, clientEngine: string, serverArgs: string[] = [], clientArgs: string[] = []):
  Promise<{ server: Proc; client: Proc }> {
  const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', serverEngine, ...serverArgs]);
  t.teardown(() => server.stop('SIGKILL'));
  const client = await runCli(['client', '-s', `ws://127.0.0.1:${server.port}/`, '--engine', clientEngine, '-c', '1',
    '-D', '0', ...clientArgs]);
  t.teardown(() => client.stop('SIGKILL'));
  await client.waitLog(/listening on 127\.0\.0\.1:\d+ → SOCKS5 \(socks\)/);
  await client.waitLog(/up → /);
  return { server, client };
}

const CONNECT = 1;

for (const engine of engines()) {
  t.test(`[${engine}] curl --socks5-hostname and --socks5 fetch a large body intact, by name, IPv4 and IPv6`, { skip: noCurl }, async (t) => {
    const http = await httpServer(t);
    const { client } = await start(t, engine, engine);
    const proxy = `127.0.0.1:${client.port}`;
    const want = sha256(BODY);
    const byName = await curl(['--socks5-hostname', proxy, `http://localhost:${http.port}/big`]);
    t.equal(byName.code, 0, `curl by name: ${byName.err}`);
    t.equal(sha256(byName.body), want, 'sha256 by name (resolved by the server)');
    const byV4 = await curl(['--socks5', proxy, `http://127.0.0.1:${http.port}/big`]);
    t.equal(byV4.code, 0, byV4.err);
    t.equal(sha256(byV4.body), want, 'sha256 by IPv4 literal (--socks5)');
    if (http.v6) {
      const byV6 = await curl(['--socks5-hostname', proxy, `http://[::1]:${http.port}/big`]);
      t.equal(byV6.code, 0, byV6.err);
      t.equal(sha256(byV6.body), want, 'sha256 by [::1]');
      await client.waitLog(new RegExp(`stream#\\d+ open from 127\\.0\\.0\\.1:\\d+ → \\[::1\\]:${http.port} \\(socks\\)`));
    }
    await client.waitLog(new RegExp(`stream#\\d+ open from 127\\.0\\.0\\.1:\\d+ → localhost:${http.port} \\(socks\\)`));
    await client.waitLog(new RegExp(`stream#\\d+ closed \\(fin\\) → localhost:${http.port} \\(socks\\) in=`));
    t.pass('stream lines name the socks tunnel');
  });

  t.test(`[${engine}] --socks-auth: the right login works, a wrong one is refused and logged without the password`, { skip: noCurl }, async (t) => {
    const http = await httpServer(t);
    const dir = t.testdir({ 'socks-auth': '# logins\nalice:open-sesame:42\n' });
    const { client } = await start(t, engine, engine, [], ['--socks-auth', join(dir, 'socks-auth')]);
    const ok = await curl(['--proxy', `socks5h://alice:open-sesame%3A42@127.0.0.1:${client.port}`, `http://localhost:${http.port}/big`]);
    t.equal(ok.code, 0, ok.err);
    t.equal(sha256(ok.body), sha256(BODY));
    const wrong = await curl(['--proxy', `socks5h://alice:wrong-guess@127.0.0.1:${client.port}`, `http://localhost:${http.port}/big`]);
    t.not(wrong.code, 0, 'a wrong password fails');
    t.equal(wrong.body.length, 0);
    const none = await curl(['--socks5-hostname', `127.0.0.1:${client.port}`, `http://localhost:${http.port}/big`]);
    t.not(none.code, 0, 'no login at all fails');
    const raw = await socksRequest(client.port, CONNECT, 'localhost', http.port, { user: 'alice\n\x1b[31m', pass: 'nope' });
    t.equal(raw.authStatus, 1, 'RFC 1929 status 1');
    t.ok(await closedWithin(raw.socket, 5000), 'and closed');
    await client.waitLog(/login refused for user "alice\\n\\u001b\[31m" from 127\.0\.0\.1:\d+/);
    await client.waitLog(/login refused for user "alice" from/);
    t.notMatch(client.logs(), /wrong-guess|open-sesame|nope/, 'no password in the logs');
  });

  t.test(`[${engine}] reply codes: denied by --allow 0x02, refused 0x05, no such name 0x04, timeout 0x06, BIND 0x07`, async (t) => {
    const http = await httpServer(t);
    const closed = await freePort();
    const hanging = await hangingTarget();
    t.teardown(() => hanging.close());
    const hangingPort = Number(hanging.addr.split(':')[1]);
    const { client } = await start(t, engine, engine, ['--connect-timeout', '800',
      '--allow', `127.0.0.1:${http.port}`, '--allow', `[::1]:${http.port}`, '--allow', `127.0.0.1:${closed}`, '--allow', `127.0.0.1:${hangingPort}`,
    ]);
    const code = async (host: string, port: number, cmd = CONNECT): Promise<number | undefined> => {
      const r = await socksRequest(client.port, cmd, host, port);
      t.ok(await closedWithin(r.socket, 10_000), `closed after reply ${r.reply} for ${host}:${port}`);
      r.socket.destroy();
      return r.reply;
    };
    t.equal(await code('localhost', 9), 0x02, 'a name resolved to a port --allow does not allow: not allowed');
    t.equal(await code('localhost', closed), 0x05, 'a closed port: connection refused');
    t.equal(await code('127.0.0.1', closed), 0x05, 'by IPv4 too');
    t.equal(await code('nothing-here.invalid', closed), 0x04, 'a name that does not resolve, at a port a rule covers: host unreachable');
    t.equal(await code('nothing-here.invalid', 80), 0x02, 'a name at a port no rule covers: not allowed, without a lookup');
    t.equal(await code('127.0.0.1', hangingPort), 0x06, 'a connect timeout: TTL expired');
    t.equal(await code('127.0.0.1', http.port, 2), 0x07, 'BIND: command not supported');
    const ok = await socksRequest(client.port, CONNECT, 'localhost', http.port);
    t.equal(ok.reply, 0, 'an allowed name succeeds');
    ok.socket.write('GET /big HTTP/1.0\r\n\r\n');
    const head = await readBytes(ok.socket, 12);
    t.equal(head.data.toString(), 'HTTP/1.1 200', 'and carries the stream right after the reply');
    ok.socket.destroy();
    // An optimistic client: greeting, request and its first payload in one write; the payload is the stream's first bytes.
    const eager = await openSocket(client.port);
    eager.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0]), socksAddress('localhost', http.port), Buffer.from('GET /big HTTP/1.0\r\n\r\n')]));
    const eagerHead = await readBytes(eager, 2 + 10 + 12);
    t.same(eagerHead.data.subarray(0, 12), Buffer.from([5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]), 'method, then success');
    t.equal(eagerHead.data.subarray(12).toString(), 'HTTP/1.1 200', 'early data carried');
    eager.destroy();
  });

  t.test(`[${engine}] UDP ASSOCIATE carries a DNS query and its answer; ends with its control connection`, async (t) => {
    const dns = await dnsResponder('192.0.2.7');
    t.teardown(() => dns.sock.close());
    const { client } = await start(t, engine, engine, [], ['--udp-timeout', '5000', '-v']);
    const assoc = await socksRequest(client.port, 3, '0.0.0.0', 0);
    t.teardown(() => assoc.socket.destroy());
    t.equal(assoc.reply, 0, 'associated');
    t.equal(assoc.bound?.host, '127.0.0.1', 'relay on the listener address');
    const relay = assoc.bound!.port;
    const u = createSocket('udp4');
    t.teardown(() => u.close());
    const got: Buffer[] = [];
    let refused = false;
    u.on('message', (m) => got.push(m));
    u.on('error', () => { refused = true; });
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
    u.connect(relay, '127.0.0.1');
    await new Promise<void>((r) => u.once('connect', () => r()));
    const header = Buffer.concat([Buffer.from([0, 0, 0]), socksAddress('127.0.0.1', dns.port)]);
    const send = (b: Buffer): void => u.send(b);
    // A fragment is dropped, not carried.
    send(Buffer.concat([Buffer.from([0, 0, 1]), socksAddress('127.0.0.1', dns.port), dnsQuery(0x1111, 'frag.test')]));
    send(Buffer.concat([header, dnsQuery(0x4242, 'db.example.test')]));
    t.ok(await waitFor(() => got.length >= 1, 10_000), 'an answer came back');
    const answer = got[0]!;
    t.same(answer.subarray(0, 10), header, 'wrapped in the §7 header with the DNS server as source');
    t.same(dnsAnswer(answer.subarray(10)), { id: 0x4242, address: '192.0.2.7' }, 'the DNS answer, intact');
    // By name too: the server resolves it.
    send(Buffer.concat([Buffer.from([0, 0, 0]), socksAddress('localhost', dns.port), dnsQuery(0x4343, 'x.test')]));
    t.ok(await waitFor(() => got.length >= 2, 10_000), 'a domain-name destination');
    t.same(got[1]!.subarray(0, 16), Buffer.concat([Buffer.from([0, 0, 0]), socksAddress('localhost', dns.port)]), 'answered as from the name asked for');
    t.equal(dnsAnswer(got[1]!.subarray(16)).id, 0x4343);
    t.equal(got.filter((m) => m.readUInt16BE(m[3] === 1 ? 10 : 16) === 0x1111).length, 0, 'the fragment was dropped');
    await client.waitLog(new RegExp(`stream#\\d+ udp open from 127\\.0\\.0\\.1:\\d+ → 127\\.0\\.0\\.1:${dns.port} \\(socks\\)`));
    await client.waitLog(/socks udp: dropped a datagram from 127\.0\.0\.1:\d+: fragmented datagram/);
    // Only the associated client's datagrams are taken: another local port is not it.
    const stranger = createSocket('udp4');
    t.teardown(() => stranger.close());
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.1', () => r()));
    stranger.send(Buffer.concat([header, dnsQuery(0x5555, 'stranger.test')]), relay, '127.0.0.1');
    await client.waitLog(new RegExp(`socks udp: dropped a datagram from 127\\.0\\.0\\.1:${(stranger.address() as AddressInfo).port}: not the associated client`));
    // Closing the control connection ends the association: the relay port closes (ICMP port unreachable → ECONNREFUSED).
    assoc.socket.destroy();
    t.ok(await waitFor(() => { send(Buffer.concat([header, dnsQuery(1, 'late.test')])); return refused; }, 10_000), 'the relay port closed with its control connection');
  });

  t.test(`[${engine}] another local user cannot take over a UDP association before its client's first datagram`, {
    skip: process.getuid?.() !== 0 ? 'needs root (a second user to play the other local user)' : false,
  }, async (t) => {
    const dns = await dnsResponder('192.0.2.8');
    t.teardown(() => dns.sock.close());
    const { client } = await start(t, engine, engine, [], ['-v']);
    const assoc = await socksRequest(client.port, 3, '0.0.0.0', 0);
    t.teardown(() => assoc.socket.destroy());
    t.equal(assoc.reply, 0, 'associated, the client\'s port not known (0)');
    const relay = assoc.bound!.port;
    const header = Buffer.concat([Buffer.from([0, 0, 0]), socksAddress('127.0.0.1', dns.port)]);
    // nobody sends first, from a socket of its own, and waits for an answer.
    const other = spawn(process.execPath, ['-e', `
      const u = require('node:dgram').createSocket('udp4');
      u.on('message', () => { console.log('answered'); process.exit(0); });
      u.bind(0, '127.0.0.1', () => u.send(Buffer.from(process.argv[1], 'hex'), ${relay}, '127.0.0.1'));
      setTimeout(() => { console.log('no answer'); process.exit(0); }, 3000);
    `, Buffer.concat([header, dnsQuery(0x6666, 'other.test')]).toString('hex')], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
    let said = '';
    other.stdout.on('data', (d: Buffer) => { said += d; });
    await new Promise((r) => other.once('exit', r));
    t.equal(said.trim(), 'no answer', 'the other user got nothing back');
    t.match(client.logs(), /socks udp: dropped a datagram from 127\.0\.0\.1:\d+: not a socket of the user who asked for the association/, 'and the client says why');
    // The user who asked still has the association.
    const u = createSocket('udp4');
    t.teardown(() => u.close());
    const got: Buffer[] = [];
    u.on('message', (m) => got.push(m));
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
    u.send(Buffer.concat([header, dnsQuery(0x7777, 'mine.test')]), relay, '127.0.0.1');
    t.ok(await waitFor(() => got.length >= 1, 10_000), 'its own first datagram is carried and answered');
    t.equal(dnsAnswer(got[0]!.subarray(10)).id, 0x7777);
  });

  t.test(`[${engine}] one local user holds at most 256 UDP associations; another user still gets one`, {
    skip: process.getuid?.() !== 0 ? 'needs root (a second user to play the other local user)' : false,
  }, async (t) => {
    const { client } = await start(t, engine, engine, [], ['-v']);
    const held: { socket: { destroy(): void } }[] = [];
    t.teardown(() => { for (const a of held) a.socket.destroy(); });
    for (let i = 0; i < 256; i++) {
      const a = await socksRequest(client.port, 3, '0.0.0.0', 0);
      held.push(a);
      if (a.reply !== 0) return t.fail(`association ${i + 1} refused (${a.reply})`);
    }
    t.pass('256 associations for this user');
    const over = await socksRequest(client.port, 3, '0.0.0.0', 0);
    held.push(over);
    t.equal(over.reply, 1, 'the 257th is refused (general failure)');
    t.match(client.logs(), /its user 0 holds 256 udp associations already/, 'saying why');
    // nobody, another local user, asks for one.
    const other = spawn(process.execPath, ['-e', `
      const s = require('node:net').connect(${client.port}, '127.0.0.1');
      let got = Buffer.alloc(0);
      s.on('data', (d) => {
        got = Buffer.concat([got, d]);
        if (got.length === 2) s.write(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
        if (got.length >= 4) { console.log('reply', got[3]); process.exit(0); }
      });
      s.write(Buffer.from([5, 1, 0]));
      setTimeout(() => { console.log('no reply'); process.exit(0); }, 5000);
    `], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
    let said = '';
    other.stdout.on('data', (d: Buffer) => { said += d; });
    await new Promise((r) => other.once('exit', r));
    t.equal(said.trim(), 'reply 0', "another local user's association succeeds");
  });

  t.test(`[${engine}] a UDP association ends after --udp-timeout without datagrams, and its control connection with it`, async (t) => {
    const dns = await dnsResponder('192.0.2.8');
    t.teardown(() => dns.sock.close());
    const { client } = await start(t, engine, engine, [], ['--udp-timeout', '700']);
    const assoc = await socksRequest(client.port, 3, '127.0.0.1', 0);
    t.teardown(() => assoc.socket.destroy());
    t.equal(assoc.reply, 0);
    const u = createSocket('udp4');
    t.teardown(() => u.close());
    const got: Buffer[] = [];
    u.on('message', (m) => got.push(m));
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
    u.send(Buffer.concat([Buffer.from([0, 0, 0]), socksAddress('127.0.0.1', dns.port), dnsQuery(7, 'a.test')]), assoc.bound!.port, '127.0.0.1');
    t.ok(await waitFor(() => got.length === 1, 10_000), 'answered');
    const began = Date.now();
    t.ok(await closedWithin(assoc.socket, 10_000), 'the control connection is closed once the association is idle');
    t.ok(Date.now() - began >= 400, `not at once (${Date.now() - began} ms)`);
  });

  t.test(`[${engine}] hostile input: stalled greeting closed after timeout, malformed messages answered and closed`, async (t) => {
    const { client } = await start(t, engine, engine, [], ['-t', '1500']);
    const stalled = await openSocket(client.port);
    stalled.write(Buffer.from([5, 2, 0]));  // one method of two
    const began = Date.now();
    t.ok(await closedWithin(stalled, 8000), 'a partial greeting is closed');
    t.ok(Date.now() - began >= 1200, `after the timeout (${Date.now() - began} ms)`);
    stalled.destroy();
    const answer = async (bytes: Buffer[], n: number): Promise<Buffer> => {
      const s = await openSocket(client.port);
      for (const b of bytes) s.write(b);
      const r = await readBytes(s, n, 5000);
      t.ok(await closedWithin(s, 5000), 'closed');
      s.destroy();
      return r.data;
    };
    t.same(await answer([Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0])], 8), Buffer.alloc(0), 'SOCKS4: closed without an answer');
    t.same(await answer([Buffer.from([5, 1, 2])], 2), Buffer.from([5, 0xff]), 'only username/password offered: no acceptable method');
    t.same(await answer([Buffer.from([5, 1, 0, 5, 1, 0, 9, 1, 2, 3, 4, 0, 80])], 12), Buffer.from([5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0]),
      'pipelined greeting and a request with address type 9: address type not supported');
    const evil = Buffer.from('evil\x1b[2J\nhost');
    t.same(await answer([Buffer.from([5, 1, 0]), Buffer.concat([Buffer.from([5, 1, 0, 3, evil.length]), evil, Buffer.from([0, 80])])], 12),
      Buffer.from([5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0]), 'a domain name with control characters: general failure');
    // (Bytes after a complete request are the stream's early data: socks-hardening.test.ts.)
    const flood = await answer([Buffer.concat([Buffer.from([5, 1, 0]), Buffer.alloc(64 * 1024)])], 12);
    t.same(flood, Buffer.from([5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0]), '64 KiB of junk after the greeting: general failure and closed, not buffered');
    t.notMatch(client.logs(), /\x1b/, 'nothing raw from a client in the logs');
  });

  t.test(`[${engine}] limits apply: a CONNECT beyond the server's --max-streams is answered 0x01`, async (t) => {
    const http = await httpServer(t);
    const { client } = await start(t, engine, engine, ['--max-streams', '1']);
    const first = await socksRequest(client.port, CONNECT, '127.0.0.1', http.port);
    t.teardown(() => first.socket.destroy());
    t.equal(first.reply, 0, 'the first stream is open');
    const second = await socksRequest(client.port, CONNECT, '127.0.0.1', http.port);
    t.equal(second.reply, 0x01, 'the second: RESET 5 (too many streams), general failure');
    t.ok(await closedWithin(second.socket, 5000), 'and closed');
    second.socket.destroy();
    await client.waitLog(/closed \(peer reset: too many streams[^\n]*\) → 127\.0\.0\.1:\d+ \(socks\)/);
  });

  t.test(`[${engine}] with no session up, a CONNECT waits for --timeout, then is answered 0x01`, async (t) => {
    const dead = await freePort();
    const client = await runCli(['client', '-s', `ws://127.0.0.1:${dead}/`, '--engine', engine, '-D', '0', '-t', '800']);
    t.teardown(() => client.stop('SIGKILL'));
    const began = Date.now();
    const r = await socksRequest(client.port, CONNECT, 'localhost', 80);
    t.equal(r.reply, 0x01, 'general failure');
    t.ok(Date.now() - began >= 700, `after waiting for a session (${Date.now() - began} ms)`);
    t.ok(await closedWithin(r.socket, 5000), 'and closed');
    r.socket.destroy();
    await client.waitLog(/no session to the server within 800 ms; closing connection from 127\.0\.0\.1:\d+ \(socks\)/);
  });

  t.test(`[${engine}] the API: createClient({ socks, socksAuth })`, { skip: noCurl }, async (t) => {
    const http = await httpServer(t);
    const e = engine as 'js' | 'native';
    const s = await createServer({ listen: '127.0.0.1:0', passwd: 'pw', engine: e });
    t.teardown(() => s.shutdown(0));
    const dir = t.testdir({ auth: 'bob:builder\n' });
    const c = await createClient({ server: `ws://127.0.0.1:${s.address.port}/`, passwd: 'pw', engine: e, connections: 1,
      socks: '127.0.0.1:0', socksAuth: join(dir, 'auth') });
    t.teardown(() => c.shutdown(0));
    t.same(c.tunnels.map((x) => x.name), ['socks'], 'a client with only a SOCKS listener');
    const r = await curl(['--proxy', `socks5h://bob:builder@127.0.0.1:${c.address.port}`, `http://localhost:${http.port}/big`]);
    t.equal(r.code, 0, r.err);
    t.equal(sha256(r.body), sha256(BODY));
    await t.rejects(createClient({ server: 'ws://127.0.0.1:1/', passwd: 'pw', engine: e, socks: '[::]:0' }),
      { code: 'TWS_ERR_CONFIG', message: /SOCKS listener on \[::\]:0 would be open to the network/ });
    await t.rejects(createClient({ server: 'ws://127.0.0.1:1/', passwd: 'pw', engine: e, socks: 'x:y' }), { code: 'TWS_ERR_CONFIG', message: /^socks: / });
  });

  t.test(`[${engine}] a SOCKS listener off loopback needs --socks-auth`, async (t) => {
    const r = await tws(['client', '-s', 'ws://127.0.0.1:1/', '--engine', engine, '-D', '0.0.0.0:0']);
    t.equal(r.code, 1);
    t.match(r.err, /tws: error: a SOCKS listener on 0\.0\.0\.0:0 would be open to the network: give it logins \(--socks-auth FILE\) or bind it to loopback \(TWS_ERR_CONFIG\)/);
    t.equal(r.err.trim().split('\n').length, 1, 'one line');
    const dir = t.testdir({ auth: 'u:p\n' });
    const ok = await runCli(['client', '-s', 'ws://127.0.0.1:1/', '--engine', engine, '-D', '0.0.0.0:0', '--socks-auth', join(dir, 'auth')]);
    t.teardown(() => ok.stop('SIGKILL'));
    t.match(ok.logs(), /listening on 0\.0\.0\.0:\d+ → SOCKS5 \(socks\)/, 'with logins it listens');
  });
}

const [a, b] = engines();
if (a && b && a !== b) {
  t.test(`[${a} server, ${b} client] and back: curl through SOCKS across engines`, { skip: noCurl }, async (t) => {
    const http = await httpServer(t);
    for (const [s, c] of [[a, b], [b, a]] as const) {
      const { client } = await start(t, s, c);
      const r = await curl(['--socks5-hostname', `127.0.0.1:${client.port}`, `http://localhost:${http.port}/big`]);
      t.equal(r.code, 0, r.err);
      t.equal(sha256(r.body), sha256(BODY), `${s} server, ${c} client: sha256`);
    }
  });
}
