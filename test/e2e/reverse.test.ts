/**
 * Reverse tunnels (-R): the server listens where --allow-reverse (or a
 * user's allow_reverse) lets it, each connection there comes back over the
 * client's sessions to the client's own target; refusals are clear on the
 * client; the listener outlives a reconnect but not a client gone for good.
 */
import t from 'tap';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, IncomingMessage } from 'node:http';
import { AddressInfo, createServer, Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { sessionOptions } from '../../src/engine/options';
import { selectEngine } from '../../src/engine/select';
import type { EngineSession, StreamClosedInfo } from '../../src/engine/types';
import { dialRequest } from '../../src/net/dial';
import { FEATURE_REVERSE, ListenError, StreamKind } from '../../src/protocol/constants';
import { ControlFrame, decodeFrame, encodeControl, encodeGoaway, encodeOpen, encodeReset, Frame } from '../../src/protocol/frames';
import { upgradeResponse } from '../../src/protocol/upgrade';
import { createLogger } from '../../src/util/log';
import { connect, echoServer, freePort, howItEnds, roundTrip, sha256, tcpServer, TcpServer } from '../helpers/net';
import { metricsPort, scrapeWhen, value } from '../helpers/metrics';
import { engines, Proc, runCli } from '../helpers/procs';
import { RawPeer, rawPeer } from '../helpers/raw-peer';
import { needs } from '../helpers/tools';
import { waitFor } from '../helpers/wait';
import { makeCa, makeCert } from '../../bench/certs';
import { WebSocket, WebSocketServer } from 'ws';

/** Whether something accepts connections on `host`:`port`. */
function accepts(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function startServer(t: Test, engine: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, ...args], env);
  t.teardown(() => server.stop('SIGKILL'));
  return server;
}

/** A client with -R specs (and one -L, so it has a listening line to wait for). */
async function startClient(t: Test, engine: string, serverPort: number, reverse: string[], args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const client = await runCli(['client', '-s', `ws://127.0.0.1:${serverPort}/`, '--engine', engine, '-L', '0:127.0.0.1:9',
    ...reverse.flatMap((r) => ['-R', r]), ...args], env);
  t.teardown(() => client.stop('SIGKILL'));
  return client;
}

/** A relay in front of the server whose connections the test can cut, and keep cut (`down`) until it says otherwise. */
async function cuttableRelay(to: number): Promise<TcpServer & { cut(): void; setDown(down: boolean): void }> {
  const pairs = new Set<Socket>();
  const state = { down: false };
  const relay = await tcpServer((down) => {
    if (state.down) return down.destroy();
    const up = connect(to, '127.0.0.1');
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
    down.pipe(up);
    up.pipe(down);
    up.on('close', () => down.destroy());
    down.on('close', () => up.destroy());
    pairs.add(up);
    pairs.add(down);
  });
  return Object.assign(relay, {
    cut: () => { for (const s of pairs) s.destroy(); pairs.clear(); },
    setDown: (down: boolean) => { state.down = down; },
  });
}

const isOk = (f: Frame): boolean => f.type === 'listen-ok';
const isLimit = (f: Frame): boolean => f.type === 'listen-err' && f.code === ListenError.LIMIT;
/** A port freePort() gave was taken before the server bound it (unlikely, not impossible). */
const isInUse = (f: Frame): boolean => f.type === 'listen-err' && f.code === ListenError.ADDRESS_IN_USE;
const listenAnswer = (p: RawPeer, request: number): Promise<Frame> =>
  p.next((f) => (f.type === 'listen-ok' || f.type === 'listen-err') && f.request === request);

/** Sends `n` LISTENs for free loopback ports at once (requests `first`, `first + 1`, …) and returns their answers in order. */
async function listenAtOnce(p: RawPeer, n: number, first: number, token: () => Buffer): Promise<Frame[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  ports.forEach((port, i) => p.send(encodeControl({ type: 'listen', stream: 0, request: first + i, token: token(), bind: `127.0.0.1:${port}` })));
  return Promise.all(ports.map((_, i) => listenAnswer(p, first + i)));
}

/**
 * Brings `p` from `held` granted listeners to `want`, one LISTEN at a time (a port taken meanwhile is asked
 * again with another), then sends one more and returns its answer: what the limit decides, whatever the ports did.
 */
async function topUp(p: RawPeer, held: number, want: number, first: number, token: () => Buffer): Promise<Frame> {
  for (let request = first; ; request++) {
    p.send(encodeControl({ type: 'listen', stream: 0, request, token: token(), bind: `127.0.0.1:${await freePort()}` }));
    const answer = await listenAnswer(p, request);
    if (held === want || !(isOk(answer) || isInUse(answer))) return answer;
    if (isOk(answer)) held++;
  }
}

const listening = (port: number): RegExp => new RegExp(`reverse ${port}: the server listens on 127\\.0\\.0\\.1:${port} \\(port ${port}\\)`);

/** Several connections at once through the reverse port to an echo target, `total` bytes in all, each way. */
async function carry(t: Test, port: number, total: number, conns: number): Promise<void> {
  await Promise.all(Array.from({ length: conns }, async (_, i) => {
    const data = randomBytes(Math.floor(total / conns) + i);
    const got = await roundTrip(port, data, 120_000);
    t.equal(sha256(got), sha256(data), `connection ${i}: ${data.length} bytes there and back, sha256 intact`);
  }));
}

const pairs: [string, string][] = [...engines().map((e): [string, string] => [e, e])];
if (engines().includes('js') && engines().includes('native')) pairs.push(['native', 'js'], ['js', 'native']);

for (const [serverEngine, clientEngine] of pairs) {
  const label = serverEngine === clientEngine ? serverEngine : `server ${serverEngine}, client ${clientEngine}`;
  const same = serverEngine === clientEngine;
  t.test(`[${label}] a reverse tunnel carries ${same ? 100 : 20} MB both ways over 4 connections, sha256 intact`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const port = await freePort();
    const server = await startServer(t, serverEngine, ['--allow-reverse', `127.0.0.1:${port}`]);
    const client = await startClient(t, clientEngine, server.port, [`${port}:${echo.addr}`], ['--metrics', '127.0.0.1:0']);
    await client.waitLog(listening(port));
    await server.waitLog(new RegExp(`reverse 127\\.0\\.0\\.1:${port}: listening on 127\\.0\\.0\\.1:${port} for session#\\d+`));
    const total = (same ? 100 : 20) * 1024 * 1024;
    await carry(t, port, total, 4);
    t.match(server.logs(), new RegExp(`stream#\\d*[02468] open from 127\\.0\\.0\\.1:\\d+ → client \\(reverse 127\\.0\\.0\\.1:${port}\\)`),
      'the server opens even streams and names the tunnel');
    t.match(client.logs(), new RegExp(`stream#\\d*[02468] open → ${echo.addr.replace(/\./g, '\\.')} \\(reverse ${port}\\)`), 'the client names it too');
    await server.waitLog(new RegExp(`stream#\\d+ closed \\(fin\\) → 127\\.0\\.0\\.1:${port} \\(reverse 127\\.0\\.0\\.1:${port}\\)`));
    await client.waitLog(new RegExp(`stream#\\d*[02468] closed \\(fin\\) → 127\\.0\\.0\\.1:${port} \\(reverse ${port}\\)`));
    const m = await scrapeWhen(await metricsPort(client), (b) => value(b, `tws_tunnel_streams_closed_total{tunnel="reverse ${port}"}`) === 4);
    t.equal(value(m.body, `tws_tunnel_bytes_total{tunnel="reverse ${port}",direction="in"}`), total + 0 + 1 + 2 + 3,
      'the client counts the reverse tunnel\'s streams and bytes under its name');
    t.notMatch(server.logs() + client.logs(), /protocol error|1002/);
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] over wss:// the client sees the capability too (the 101 read by Node's TLS or by the engine's)`, { skip: needs('openssl') }, async (t) => {
    const dir = t.testdir({});
    const ca = makeCa(dir, 'ca');
    const leaf = makeCert(dir, ca, 'leaf', ['localhost']);
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const port = await freePort();
    const server = await startServer(t, engine, ['--allow-reverse', `127.0.0.1:${port}`, '--tls-cert', leaf.cert, '--tls-key', leaf.key]);
    const client = await runCli(['client', '-s', `wss://localhost:${server.port}/`, '--ca', ca.cert, '--engine', engine, '-c', '1',
      '-L', '0:127.0.0.1:9', '-R', `${port}:${echo.addr}`]);
    t.teardown(() => client.stop('SIGKILL'));
    await client.waitLog(listening(port));
    const data = randomBytes(2 * 1024 * 1024);
    t.equal(sha256(await roundTrip(port, data)), sha256(data), '2 MB there and back');
  });

  t.test(`[${engine}] without --allow-reverse the server refuses: the client says so, nothing listens, other tunnels carry on`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const port = await freePort();
    const server = await startServer(t, engine);
    const client = await runCli(['client', '-s', `ws://127.0.0.1:${server.port}/`, '--engine', engine, '-c', '1',
      '-L', `0:${echo.addr}`, '-R', `${port}:${echo.addr}`]);
    t.teardown(() => client.stop('SIGKILL'));
    const line = await client.waitLog(/ WARN .*reverse \d+: the server refused it: .*/);
    t.match(line, new RegExp(`reverse ${port}: the server refused it: not allowed \\(no --allow-reverse rule matches\\); asking again in \\d+ ms$`));
    t.notOk(await accepts(port), 'nothing listens on the port');
    t.equal((await roundTrip(client.port, Buffer.from('still here'))).toString(), 'still here', 'the -L tunnel works');
  });

  t.test(`[${engine}] only a matching rule allows a reverse listener; a port already taken is a clear error`, async (t) => {
    const echo = await echoServer();
    const taken = await tcpServer(() => undefined);
    t.teardown(async () => { await echo.close(); await taken.close(); });
    const [ok, other] = [await freePort(), await freePort()];
    const server = await startServer(t, engine, ['--allow-reverse', `127.0.0.1:${ok}`, '--allow-reverse', `127.0.0.1:${taken.port}`]);
    const client = await startClient(t, engine, server.port, [`${ok}:${echo.addr}`, `${other}:${echo.addr}`, `${taken.port}:${echo.addr}`], ['-c', '1']);
    await client.waitLog(listening(ok));
    t.match(await client.waitLog(new RegExp(`reverse ${other}: the server refused it: .*`)), /not allowed/, 'another port is not');
    t.match(await client.waitLog(new RegExp(`reverse ${taken.port}: the server refused it: .*`)),
      new RegExp(`address in use: 127\\.0\\.0\\.1:${taken.port}; asking again in \\d+ ms`), 'a taken port says so');
    t.notOk(await accepts(other), 'nothing listens on the port not allowed');
    t.equal((await roundTrip(ok, Buffer.from('allowed'))).toString(), 'allowed', 'the allowed one carries');
  });

  t.test(`[${engine}] 0.0.0.0 and [::] binds: * and a rule naming them allow them; a network containing them does not`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const ports: number[] = [];
    for (let i = 0; i < 6; i++) ports.push(await freePort());
    const [any4, any6, exact4, exact6, net4, net6] = ports as [number, number, number, number, number, number];
    const server = await startServer(t, engine, ['--allow-reverse', `*:${any4}`, '--allow-reverse', `*:${any6}`,
      '--allow-reverse', `0.0.0.0:${exact4}`, '--allow-reverse', `[::]:${exact6}`,
      '--allow-reverse', `0.0.0.0/0:${net4}`, '--allow-reverse', `[::/0]:${net6}`]);
    const client = await startClient(t, engine, server.port, [any4, exact4, net4].map((p) => `0.0.0.0:${p}:${echo.addr}`)
      .concat([any6, exact6, net6].map((p) => `[::]:${p}:${echo.addr}`)), ['-c', '1']);
    for (const p of [any4, exact4]) await client.waitLog(new RegExp(`reverse 0\\.0\\.0\\.0:${p}: the server listens on 0\\.0\\.0\\.0:${p} `));
    for (const p of [any6, exact6]) await client.waitLog(new RegExp(`reverse \\[::\\]:${p}: the server listens on \\[::\\]:${p} `));
    t.match(await client.waitLog(new RegExp(`reverse 0\\.0\\.0\\.0:${net4}: the server refused it: .*`)), /not allowed \(no --allow-reverse rule matches\)/,
      '0.0.0.0/0 does not cover every interface at once');
    t.match(await client.waitLog(new RegExp(`reverse \\[::\\]:${net6}: the server refused it: .*`)), /not allowed \(no --allow-reverse rule matches\)/,
      '[::/0] does not either');
    t.equal((await roundTrip(any4, Buffer.from('any4'))).toString(), 'any4', '0.0.0.0 carries');
    t.ok(await accepts(exact6, '::1'), '[::] accepts over IPv6');
    t.notOk(await accepts(exact6), '[::] binds IPv6 only: an IPv6 rule opens no IPv4 port');
  });

  t.test(`[${engine}] per-user allow_reverse in the users file`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const [alicePort, bobPort] = [await freePort(), await freePort()];
    const dir = t.testdir({
      'users.yaml': `alice:\n  passwd: alice-secret\n  allow_reverse: ["127.0.0.1:${alicePort}"]\nbob:\n  passwd: bob-secret\n`,
    });
    const server = await startServer(t, engine, ['--users', join(dir, 'users.yaml'), '--allow-reverse', `127.0.0.1:${bobPort}`]);
    const alice = await startClient(t, engine, server.port, [`${alicePort}:${echo.addr}`, `${bobPort}:${echo.addr}`], ['-c', '1', '--user', 'alice'],
      { TWS_PASSWD: 'alice-secret' });
    await alice.waitLog(listening(alicePort));
    await alice.waitLog(new RegExp(`reverse ${bobPort}: the server refused it: not allowed`));
    t.pass("alice's own rule replaces the server's");
    const bob = await startClient(t, engine, server.port, [`${alicePort}:${echo.addr}`], ['-c', '1', '--user', 'bob'], { TWS_PASSWD: 'bob-secret' });
    await bob.waitLog(new RegExp(`reverse ${alicePort}: the server refused it: not allowed`));
    t.pass("bob, without his own, has the server's rules, which do not cover alice's port");
    t.equal((await roundTrip(alicePort, Buffer.from('alice'))).toString(), 'alice');
  });

  t.test(`[${engine}] SIGHUP: a users file that no longer allows a listener closes it, and the client hears of it`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const port = await freePort();
    const users = (rules: string): string => `alice:\n  passwd: alice-secret\n  allow_reverse: [${rules}]\n`;
    const dir = t.testdir({ 'users.yaml': users(`"127.0.0.1:${port}"`) });
    const server = await startServer(t, engine, ['--users', join(dir, 'users.yaml')]);
    const client = await startClient(t, engine, server.port, [`${port}:${echo.addr}`], ['-c', '2', '--user', 'alice', '-e', '100'],
      { TWS_PASSWD: 'alice-secret' });
    await client.waitLog(listening(port));
    t.equal((await roundTrip(port, Buffer.from('allowed'))).toString(), 'allowed');
    writeFileSync(join(dir, 'users.yaml'), users(''));
    server.proc.kill('SIGHUP');
    await server.waitLog(new RegExp(`reverse 127\\.0\\.0\\.1:${port}: closed \\(no longer allowed after a reload\\)`));
    t.notOk(await accepts(port), 'the port is closed');
    t.match(await client.waitLog(new RegExp(`reverse ${port}: the server refused it: .*`)), /not allowed \(listener closed: no longer allowed after a reload\)/,
      'the client is told, and asks again');
    t.match(await server.waitLog(/SIGHUP: reloaded users from .*/), /: [12] session\(s\) kept, 0 closed$/, 'its sessions stay');
  });

  t.test(`[${engine}] SIGHUP: a user removed from the users file loses its listeners at once, not after the grace period`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const port = await freePort();
    const users = (alice: boolean): string => `${alice ? 'alice:\n  passwd: alice-secret\n' : ''}bob:\n  passwd: bob-secret\n`;
    const dir = t.testdir({ 'users.yaml': users(true) });
    const server = await startServer(t, engine, ['--users', join(dir, 'users.yaml'), '--allow-reverse', `127.0.0.1:${port}`, '-t', '20000']);
    const client = await startClient(t, engine, server.port, [`${port}:${echo.addr}`], ['-c', '1', '--user', 'alice'], { TWS_PASSWD: 'alice-secret' });
    await client.waitLog(listening(port));
    writeFileSync(join(dir, 'users.yaml'), users(false));
    server.proc.kill('SIGHUP');
    await server.waitLog(new RegExp(`reverse 127\\.0\\.0\\.1:${port}: closed \\(no longer allowed after a reload\\)`), 5000);
    t.notOk(await accepts(port), 'the port is free at once (the grace period is 60 s)');
    const again = createServer();
    await new Promise<void>((resolve, reject) => { again.once('error', reject); again.listen(port, '127.0.0.1', resolve); });
    t.teardown(() => again.close());
    t.pass('and can be bound again');
  });

  t.test(`[${engine}] the listener survives a client reconnect, and closes once the client is gone longer than the grace period`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const port = await freePort();
    const server = await startServer(t, engine, ['--allow-reverse', `127.0.0.1:${port}`, '-t', '1000']);
    const relay = await cuttableRelay(server.port);
    t.teardown(() => relay.close());
    const client = await startClient(t, engine, relay.port, [`${port}:${echo.addr}`], ['-c', '2', '-t', '1000', '-e', '50']);
    await client.waitLog(listening(port));
    await server.waitLog(/(?:[\s\S]*?up from ){2}/);
    t.equal((await roundTrip(port, Buffer.from('before'))).toString(), 'before', 'works before');
    relay.setDown(true);
    relay.cut();
    await server.waitLog(new RegExp(`reverse 127\\.0\\.0\\.1:${port}: no session of its client is up; closing it in 3000 ms`));
    // A connection while the client is away waits for it, and is carried once it is back.
    const early = roundTrip(port, Buffer.from('waited'));
    await client.waitLog(/cannot connect to /);
    relay.setDown(false);
    t.equal((await early).toString(), 'waited', 'a connection made while the client was away is carried when it comes back');
    await server.waitLog(new RegExp(`reverse 127\\.0\\.0\\.1:${port}: its client is back`), 10_000);
    const data = randomBytes(1024 * 1024);
    t.equal(sha256(await roundTrip(port, data)), sha256(data), 'works again after the reconnect');
    t.notMatch(server.logs(), /: closed \(/, 'the listener was never closed');

    await client.stop('SIGKILL');
    const gone = Date.now();
    await server.waitLog(new RegExp(`reverse 127\\.0\\.0\\.1:${port}: closed \\(its client did not come back within 3000 ms\\)`), 10_000);
    t.ok(Date.now() - gone >= 2500, 'not before the grace period');
    t.notOk(await accepts(port), 'and nothing listens any more');
  });

  t.test(`[${engine}] while the client is away: a connection that goes is not kept nor carried; early data waits; at most 16 per address`, async (t) => {
    let reached = 0;
    const echo = await tcpServer((s) => { reached++; s.pipe(s); });
    t.teardown(() => echo.close());
    const port = await freePort();
    const server = await startServer(t, engine, ['--allow-reverse', `127.0.0.1:${port}`, '-t', '2000', '-v']);
    const relay = await cuttableRelay(server.port);
    t.teardown(() => relay.close());
    const client = await startClient(t, engine, relay.port, [`${port}:${echo.addr}`], ['-c', '1', '-t', '2000', '-e', '50']);
    await client.waitLog(listening(port));
    relay.setDown(true);
    relay.cut();
    await server.waitLog(new RegExp(`reverse 127\\.0\\.0\\.1:${port}: no session of its client is up`));
    // 16 that connect and go at once (their FIN is all the server hears of them).
    for (let i = 0; i < 16; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      await new Promise((r) => s.once('connect', r));
      s.end();
    }
    await server.waitLog(/(?:went before its client came back[\s\S]*?){16}/);
    t.pass('each one that went is let go at once');
    // One address holds at most 16 places.
    const held: Socket[] = [];
    t.teardown(() => { for (const s of held) s.destroy(); });
    for (let i = 0; i < 17; i++) {
      const s = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      s.on('error', () => undefined);
      held.push(s);
    }
    t.match(await server.waitLog(/connection from 127\.0\.0\.2:\d+ closed: .*/), /16 from this address already wait for the client/);
    // Data sent while waiting is carried first once the client is back.
    const early = roundTrip(port, Buffer.from('sent while the client was away'));
    await client.waitLog(/cannot connect to /);
    relay.setDown(false);
    t.equal((await early).toString(), 'sent while the client was away', 'early data reached the target, echoed back');
    t.ok(await waitFor(() => reached >= 17), `the 16 held and the one with data reached the target (${reached})`);
    // All that waited were carried at once, as the client came back: one more connection made after them shows the count.
    t.equal((await roundTrip(port, Buffer.from('after'))).toString(), 'after');
    t.equal(reached, 18, 'none of those that went was carried');
  });

  t.test(`[${engine}] --max-streams applies to reverse streams`, async (t) => {
    const held = await tcpServer(() => undefined);  // accepts and holds every connection
    t.teardown(() => held.close());
    const port = await freePort();
    const server = await startServer(t, engine, ['--allow-reverse', `127.0.0.1:${port}`, '--max-streams', '1']);
    const client = await startClient(t, engine, server.port, [`${port}:${held.addr}`], ['-c', '1']);
    await client.waitLog(listening(port));
    const first = connect(port, '127.0.0.1');
    t.teardown(() => first.destroy());
    first.on('error', () => undefined);
    await server.waitLog(/stream#\d+ open from .* → client \(reverse /);
    const second = connect(port, '127.0.0.1');
    const ended = await howItEnds(second);
    t.equal(ended.data.length, 0, 'a second connection is closed');
    t.match(await server.waitLog(/connection from .* closed: 1 streams open \(--max-streams\)/), /reverse 127\.0\.0\.1:\d+/);
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] LISTEN at the byte level: layout and direction errors are 1002; bad address, limits`, async (t) => {
    const server = await startServer(t, engine, ['--allow-reverse', '127.0.0.1:*']);
    const token = randomBytes(16);
    const listen = (request: number, bind: string): Buffer => encodeControl({ type: 'listen', stream: 0, request, token, bind });
    const bad: [string, Buffer][] = [
      ['LISTEN_OK sent to a server', encodeControl({ type: 'listen-ok', stream: 0, request: 1, port: 80 })],
      ['LISTEN_ERR sent to a server', encodeControl({ type: 'listen-err', stream: 0, request: 1, code: 1, reason: 'x' })],
      ['LISTEN on a stream', Buffer.concat([Buffer.from([9, 0, 0, 0, 1]), listen(1, '127.0.0.1:1').subarray(5)])],
      ['LISTEN without an address', listen(1, '127.0.0.1:1').subarray(0, 25)],
    ];
    for (const [what, frame] of bad) {
      const p = await rawPeer(server.port);
      p.send(frame);
      const late = new Promise<{ code: number }>((resolve) => setTimeout(() => resolve({ code: 0 }), 5000).unref());
      t.equal((await Promise.race([p.closed, late])).code, 1002, what);
      p.ws.terminate();
    }
    const p = await rawPeer(server.port);
    t.teardown(() => p.ws.close());
    p.send(Buffer.from([0x0c, 0, 0, 0, 0, 1, 2, 3]));
    p.send(listen(1, 'localhost:80'));
    t.match(await p.next((f) => f.type === 'listen-err' && f.request === 1), { code: ListenError.BAD_ADDRESS }, 'a name is a bad address (type 12 before it was ignored)');
    const answers = await listenAtOnce(p, 17, 100, () => token);
    t.notOk(answers.slice(0, 16).some(isLimit), 'none of the first 16 is refused by the limit');
    t.ok(answers.filter(isOk).length <= 16, 'at most 16 granted');
    const next = await topUp(p, answers.filter(isOk).length, 16, 200, () => token);
    t.match(next, { type: 'listen-err', code: ListenError.LIMIT, reason: 'too many listeners (16 per client)' }, 'with 16 held, the next is refused');
  });

  t.test(`[${engine}] one session sending LISTENs with fresh tokens gets at most 16 listeners`, async (t) => {
    const server = await startServer(t, engine, ['--allow-reverse', '127.0.0.1:*']);
    const p = await rawPeer(server.port);
    t.teardown(() => p.ws.close());
    const answers = await listenAtOnce(p, 100, 1, () => randomBytes(16));
    t.notOk(answers.slice(0, 16).some(isLimit), 'none of the first 16 is refused by the limit');
    t.ok(answers.filter(isOk).length <= 16, '16 listeners per session at most, whatever its tokens');
    t.ok(answers.every((f) => isOk(f) || isLimit(f) || isInUse(f)), 'each is granted, refused by the limit, or its port was taken');
    if (!answers.some(isInUse)) t.ok(answers.slice(16).every(isLimit), 'every one after the first 16 refused by the limit');
    const next = await topUp(p, answers.filter(isOk).length, 16, 1000, () => randomBytes(16));
    t.match(next, { type: 'listen-err', code: ListenError.LIMIT, reason: 'too many listeners (16 per session)' }, 'with 16 held, the next is refused');
  });
}

/**
 * A server made here from a real engine, in-process, so the test decides
 * what its 101 offers and which streams it opens: an old server (no
 * Tws-Features), or one that opens a stream to a target the client never
 * asked for.
 */
async function handMadeServer(t: Test, engineName: 'js' | 'native', features: string[]): Promise<{ port: number; sessions: EngineSession[]; frames: ControlFrame[] }> {
  const engine = selectEngine(engineName);
  const sessions: EngineSession[] = [];
  const frames: ControlFrame[] = [];
  const http = createHttpServer();
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const preamble = Buffer.from(upgradeResponse(req.headers['sec-websocket-key'] as string, features), 'latin1');
    const session = engine.adopt(socket as Socket, head, preamble, sessionOptions('server', { logger: createLogger('error') }));
    session.on('control', (f: ControlFrame) => frames.push(f));
    // It carries the client's -L streams like a server without an allow-list.
    session.on('open-request', (req) => {
      const [host, p] = [req.target.slice(0, req.target.lastIndexOf(':')), Number(req.target.slice(req.target.lastIndexOf(':') + 1))];
      dialRequest(req, { host, port: p }, 5000);
    });
    sessions.push(session);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => {
    for (const s of sessions) s.close(1001, 'test over');
    http.close();
  });
  return { port: (http.address() as AddressInfo).port, sessions, frames };
}

for (const engine of engines() as ('js' | 'native')[]) {
  t.test(`[${engine}] a server without the capability: one warning, no LISTEN sent, no 1002, the other tunnels work`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const old = await handMadeServer(t, engine, []);
    const client = await runCli(['client', '-s', `ws://127.0.0.1:${old.port}/`, '--engine', engine, '-c', '1',
      '-L', `0:${echo.addr}`, '-R', `${await freePort()}:${echo.addr}`]);
    t.teardown(() => client.stop('SIGKILL'));
    await client.waitLog(/ WARN .*reverse tunnels are not available on this server \(it does not offer them; an older tws\?\): reverse \d+ not opened/);
    t.equal((await roundTrip(client.port, Buffer.from('old server'))).toString(), 'old server', 'the -L tunnel works');
    t.same(old.frames, [], 'the server got no LISTEN');
    t.ok(old.sessions.every((s) => !s.closed), 'and its session is up');
    t.notMatch(client.logs(), /protocol error|1002/);
  });

  t.test(`[${engine}] a server-opened stream to a target the client did not register is refused with RESET 1`, async (t) => {
    const echo = await echoServer();
    const sink = await tcpServer(() => undefined);
    t.teardown(async () => { await echo.close(); await sink.close(); });
    const port = await freePort();
    const evil = await handMadeServer(t, engine, [FEATURE_REVERSE]);
    const client = await runCli(['client', '-s', `ws://127.0.0.1:${evil.port}/`, '--engine', engine, '-c', '1',
      '-L', `0:${echo.addr}`, '-R', `${port}:${echo.addr}`]);
    t.teardown(() => client.stop('SIGKILL'));
    await waitFor(() => evil.frames.length > 0);
    t.match(evil.frames[0], { type: 'listen', bind: `127.0.0.1:${port}` }, 'the client asked for its listener');
    const session = evil.sessions[0]!;
    const closed = (target: string): Promise<StreamClosedInfo> => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the stream to ${JSON.stringify(target)} did not end`)), 10_000);
      const on = (info: StreamClosedInfo): void => {
        if (info.target !== target) return;
        clearTimeout(timer);
        session.off('stream-closed', on);
        resolve(info);
      };
      session.on('stream-closed', on);
    });
    for (const target of [sink.addr, `127.0.0.1:${port + 1}`, '']) {
      const local = connect(sink.port, '127.0.0.1');
      await new Promise((r) => local.once('connect', r));
      const done = closed(target);
      t.not(session.openStream(local, target), 0, `a stream to ${JSON.stringify(target)} is opened`);
      t.match((await done).how, /^peer reset: denied \(no such reverse tunnel\)$/, `and refused: ${JSON.stringify(target)}`);
    }
    t.match(client.logs(), /stream#\d*[02468] refused: the server asked for 127\.0\.0\.1:\d+, which is no reverse tunnel of this client/);
    // The registered one is carried (an OPEN naming the bind).
    const local = connect(sink.port, '127.0.0.1');
    await new Promise((r) => local.once('connect', r));
    t.not(session.openStream(local, `127.0.0.1:${port}`), 0);
    await client.waitLog(new RegExp(`stream#\\d+ open → ${echo.addr.replace(/\./g, '\\.')} \\(reverse ${port}\\)`));
    t.pass('the registered bind is carried');
  });
}

/** Opens `n` streams from `session` toward `target`, each from a socket of `sinkPort`; `refused` counts those the client answers with RESET 5. */
async function openMany(t: Test, session: EngineSession, sinkPort: number, target: string, n: number): Promise<{ refused: number }> {
  const locals: Socket[] = [];
  const counts = { refused: 0 };
  const onClosed = (info: StreamClosedInfo): void => { if (/^peer reset: too many streams/.test(info.how)) counts.refused++; };
  session.on('stream-closed', onClosed);
  t.teardown(() => {
    session.off('stream-closed', onClosed);
    for (const s of locals) s.destroy();
  });
  for (let i = 0; i < n; i++) {
    const local = connect(sinkPort, '127.0.0.1');
    local.on('error', () => undefined);
    locals.push(local);
    await new Promise((r) => local.once('connect', r));
    t.not(session.openStream(local, target), 0, `stream ${i} opened`, { diagnostic: false });
  }
  return counts;
}

for (const engine of engines() as ('js' | 'native')[]) {
  for (const [args, cap] of [[[], 1024], [['--max-streams', '8'], 8]] as [string[], number][]) {
    t.test(`[${engine}] a server opening streams without end gets ${cap} per session (${args.length ? args.join(' ') : 'the client default'}); more are RESET 5`, async (t) => {
      const echo = await echoServer();
      const sink = await tcpServer(() => undefined);  // holds what it accepts: the client's dials and the test's own ends
      t.teardown(async () => { await echo.close(); await sink.close(); });
      const port = await freePort();
      const evil = await handMadeServer(t, engine, [FEATURE_REVERSE]);
      const client = await runCli(['client', '-s', `ws://127.0.0.1:${evil.port}/`, '--engine', engine, '-c', '1',
        '-L', `0:${echo.addr}`, '-R', `${port}:${sink.addr}`, ...args]);
      t.teardown(() => client.stop('SIGKILL'));
      await waitFor(() => evil.frames.length > 0);
      const session = evil.sessions[0]!;
      const extra = 20;
      const counts = await openMany(t, session, sink.port, `127.0.0.1:${port}`, cap + extra);
      await waitFor(() => counts.refused + session.streamCount === cap + extra && counts.refused >= extra, 20_000)
        .catch(() => undefined);
      t.equal(counts.refused, extra, `${extra} refused with RESET 5`);
      t.equal(session.streamCount, cap, `${cap} carried`);
      t.equal((await roundTrip(client.port, Buffer.from('still'), 5000)).toString(), 'still', 'the -L tunnel still works');
    });
  }
}

/**
 * A hostile server at the byte level: each session that sends LISTEN gets
 * LISTEN_OK; `onSession(i, ws, bind)` then plays it. What each session got
 * back (decoded frames) is kept.
 */
async function byteServer(t: Test, onSession: (i: number, ws: WebSocket, bind: string) => void): Promise<{ port: number; got: Frame[][]; sockets: WebSocket[] }> {
  const wss = new WebSocketServer({ noServer: true, handleProtocols: () => 'tws2', perMessageDeflate: false });
  wss.on('headers', (h) => h.push(`Tws-Features: ${FEATURE_REVERSE}`));
  const got: Frame[][] = [];
  const sockets: WebSocket[] = [];
  const http = createHttpServer();
  http.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => {
    const i = got.length;
    const frames: Frame[] = [];
    got.push(frames);
    sockets.push(ws);
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      const f = decodeFrame(data);
      frames.push(f);
      if (f.type !== 'listen') return;
      ws.send(encodeControl({ type: 'listen-ok', stream: 0, request: f.request, port: 9000 }));
      onSession(i, ws, f.bind);
    });
  }));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => {
    for (const ws of wss.clients) ws.terminate();
    http.close();
  });
  return { port: (http.address() as AddressInfo).port, got, sockets };
}

for (const engine of engines() as ('js' | 'native')[]) {
  t.test(`[${engine}] a server cannot dial the client's target past --max-streams by draining session after session: OPENs after its GOAWAY are RESET 9, and the cap counts every session`, async (t) => {
    const cap = 8;
    const sink = await tcpServer(() => undefined);
    t.teardown(() => sink.close());
    const port = await freePort();
    const opens = (ws: WebSocket, bind: string, ids: number[]): void => {
      for (const id of ids) ws.send(encodeOpen(id, 1 << 20, StreamKind.TCP, bind));
    };
    const evil = await byteServer(t, (i, ws, bind) => {
      if (i === 0) {
        // Six (of the eight a session may hold), then GOAWAY, then two more: refused as after a GOAWAY.
        opens(ws, bind, [2, 4, 6, 8, 10, 12]);
        ws.send(encodeGoaway(9, 'draining'));
        opens(ws, bind, [100, 102]);
      } else {
        // The client's next session: with the first session's six still open, two more make the cap.
        opens(ws, bind, [200, 202, 204]);
      }
    });
    const client = await runCli(['client', '-s', `ws://127.0.0.1:${evil.port}/`, '--engine', engine, '-c', '1',
      '-L', `0:${sink.addr}`, '-R', `${port}:${sink.addr}`, '--max-streams', String(cap)]);
    t.teardown(() => client.stop('SIGKILL'));
    const resets = (i: number): Map<number, number> =>
      new Map((evil.got[i] ?? []).flatMap((f) => (f.type === 'reset' ? [[f.stream, f.code] as [number, number]] : [])));
    const openOks = (i: number): number => (evil.got[i] ?? []).filter((f) => f.type === 'open-ok').length;
    await waitFor(() => openOks(0) + resets(0).size >= 8 && openOks(1) + resets(1).size >= 3, 20_000);
    t.equal(openOks(0), 6, "the first session's six streams are carried");
    t.same([...resets(0)].sort(), [[100, 9], [102, 9]], 'the OPENs after its GOAWAY are refused with RESET 9');
    t.ok(evil.got.length >= 2, 'the client brought up another session after the GOAWAY');
    t.equal(openOks(1), 2, 'the next session gets two, which make the cap with the first one\'s six');
    t.same([...resets(1)], [[204, 5]], `and the third is refused with RESET 5: ${cap} held in all`);
    t.equal(sink.sockets.size, cap, `the target got ${cap} connections, no more`);
    t.match(client.logs(), /refused: the server opened it after its GOAWAY/);
    t.match(client.logs(), /refused: this client holds 8 streams the server opened \(--max-streams\)/);
    // One of the first session's streams ends: the next session may open one more.
    evil.sockets[0]!.send(encodeReset(2, 6, 'done'));
    await waitFor(() => sink.sockets.size < cap);
    evil.sockets[1]!.send(encodeOpen(206, 1 << 20, StreamKind.TCP, `127.0.0.1:${port}`));
    await waitFor(() => openOks(1) + resets(1).size > 3);
    t.equal(openOks(1), 3, 'once one of them ends, the next is carried');
  });
}
