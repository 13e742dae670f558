/**
 * tws-rust 0.2 interop (docs/legacy.md), against the real binary: its client
 * through `tws server --legacy`, and `tws client --legacy` to its server, on
 * both engines. Transfers stay at tens of MB: tws-rust's inverted throttle
 * makes a saturating sender buffer without bound (../shared/peers/README.md).
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeCa, makeCert } from '../../bench/certs';
import { needs } from '../helpers/tools';
import { request } from 'node:http';
import { connect, echoServer, hangingTarget, howItEnds, loopbackBuffering, rssMiB, sha256, tcpServer } from '../helpers/net';
import { engines, PASSWD, Proc, runCli } from '../helpers/procs';
import { echoExactly, freePort, needsTwsRust, runRust, RustProc } from '../helpers/tws-rust';
import { exchange, udpEcho } from '../helpers/udp';
import { metricsPort, scrapeWhen, value } from '../helpers/metrics';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { authMessage, dataHeader, handshakeBody, idFrom, newConnectionBody } from '../../src/engine/legacy/wire';
import { clientFrame } from '../helpers/raw-ws';
import { waitFor } from '../helpers/wait';

const skip = needsTwsRust();
if (skip) t.comment(`interop tests skipped: ${skip}`);
else run();
hostile();

/** 20 streams of random sizes (about 20 MB each way in all), each checked by sha256. */
async function twentyStreams(port: number): Promise<boolean[]> {
  const sizes = Array.from({ length: 20 }, (_, i) => (i === 0 ? 1 : 1000 + Math.floor(Math.random() * 2_000_000)));
  return Promise.all(sizes.map(async (n) => {
    const data = randomBytes(n);
    return sha256(await echoExactly(port, data)) === sha256(data);
  }));
}

/** The tws-rust client, -l on a fixed port, once a line matches `ready` (default: a session is up). */
async function rustClient(serverPort: number, target: string, o: { passwd?: string; ready?: RegExp; connections?: number } = {}): Promise<{ rust: RustProc; port: number }> {
  const port = await freePort();
  const rust = await runRust(['client', '-l', `127.0.0.1:${port}`, '-s', `ws://127.0.0.1:${serverPort}/`, '-r', target, '-p', o.passwd ?? PASSWD,
    '-c', String(o.connections ?? 2)], o.ready ?? /Session up/);
  return { rust, port };
}

/**
 * Both of a tws-rust client's sessions are up, on `server` and in the
 * client itself: it places a new connection on either, and closes one that
 * lands on a session it does not count as up yet (with a RST). The server
 * says up before the client hears so: `ups`, how many "Session up" lines
 * the client must have written (a restart adds two more).
 */
async function bothUp(server: Proc, rust: RustProc, ups = 2, timeoutMs = 10_000): Promise<void> {
  await server.waitLog(/(?:[\s\S]*?\(tws-rust\) up from){2}/, timeoutMs);
  await rust.waitLog(new RegExp(`(?:[\\s\\S]*?Session up){${ups}}`), timeoutMs);
}

async function rustServer(port?: number): Promise<{ rust: RustProc; port: number }> {
  const p = port ?? await freePort();
  const rust = await runRust(['server', '-l', `127.0.0.1:${p}`, '-p', PASSWD], /Server up and listening/);
  return { rust, port: p };
}

function legacyClient(engine: string, serverPort: number, target: string, extra: string[] = []): Promise<Proc> {
  return runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${serverPort}/`, '-r', target, '--legacy', '--engine', engine, '-c', '2', ...extra]);
}

function run(): void {
  for (const engine of engines()) {
    t.test(`[${engine}] a tws-rust client through tws server --legacy: 20 streams intact, UDP, metrics, logs`, async (t) => {
      const echo = await echoServer();
      const udp = await udpEcho();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '--metrics', '127.0.0.1:0']);
      const { rust, port } = await rustClient(server.port, echo.addr);
      t.teardown(async () => { await rust.stop(); await server.stop('SIGKILL'); await echo.close(); udp.sock.close(); });
      await bothUp(server, rust);
      t.match(server.logs(), /session#\d+ \(tws-rust\) up from .*tws-rust → 127\.0\.0\.1:\d+/);
      t.match(server.logs(), /--legacy: tws-rust 0\.2 clients are accepted with their weaker authentication.*replayed within 5 s/, 'the warning at start');
      const results = await twentyStreams(port);
      t.same(results, results.map(() => true), 'every stream intact both ways');
      await server.waitLog(/session#\d+ \(tws-rust\) stream#\d+ closed \(fin\)/);

      // UDP through the tws-rust client's UDP listener (same address as its TCP one).
      const { rust: rustUdp, port: udpPort } = await rustClient(server.port, udp.addr, { connections: 1 });
      t.teardown(() => rustUdp.stop());
      t.same(await exchange(udpPort, ['one', 'two']), ['echo:one', 'echo:two'], 'datagrams both ways');
      await server.waitLog(/\(tws-rust\) stream#\d+ open → udp 127\.0\.0\.1/);

      const m = await scrapeWhen(await metricsPort(server), (b) => /tws_protocol_sessions\{protocol="tws-rust"\} [1-9]/.test(b));
      t.match(m.body, /tws_protocol_sessions_opened_total\{protocol="tws-rust"\} [1-9]/, 'sessions by protocol');
      t.match(m.body, /tws_protocol_stream_bytes_total\{protocol="tws-rust",direction="in"\} [1-9]\d{6}/, 'bytes by protocol');
      t.match(m.body, /^tws_sessions [1-9]/m, 'the existing series count them too, unlabelled as before');
      t.notMatch(server.logs(), new RegExp(PASSWD), 'the password never reaches the log');
    });

    t.test(`[${engine}] tws server --legacy applies --allow to a tws-rust session's TARGET: the local socket closes`, async (t) => {
      const echo = await echoServer();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '--allow', '127.0.0.1:1']);
      const { rust, port } = await rustClient(server.port, echo.addr);
      t.teardown(async () => { await rust.stop(); await server.stop('SIGKILL'); await echo.close(); });
      await bothUp(server, rust);
      const { data } = await howItEnds(connect({ port, host: '127.0.0.1' }));
      t.equal(data.length, 0, 'nothing from a denied target');
      await server.waitLog(/\(tws-rust\) stream#\d+ denied → 127\.0\.0\.1:\d+: /);
      t.equal(echo.sockets.size, 0, 'the target was never connected');
    });

    t.test(`[${engine}] a tws-rust client with the wrong password is refused; without --legacy it gets the prober's 404`, async (t) => {
      const echo = await echoServer();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy']);
      const { rust } = await rustClient(server.port, echo.addr, { passwd: 'wrong-password', ready: /Session \d+ closed/ });
      t.teardown(async () => { await rust.stop(); await server.stop('SIGKILL'); await echo.close(); });
      await server.waitLog(/refused tws-rust session from 127\.0\.0\.1:\d+: bad MAC \(wrong password\?\) \(closed 1008\)/);
      t.notMatch(server.logs(), /\(tws-rust\) up from/, 'no session came up');

      const plain = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
      t.teardown(() => plain.stop('SIGKILL'));
      const old = await rustClient(plain.port, echo.addr, { ready: /Session \d+ closed/ });
      t.teardown(() => old.rust.stop());
      await plain.waitLog(/refused upgrade from 127\.0\.0\.1:\d+: subprotocol tws2 not offered \(answered 404\)/);
      // What a tws-rust upgrade gets is byte for byte what a prober's GET gets.
      const answer = (headers: Record<string, string>): Promise<string> => new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: plain.port, path: '/', headers });
        req.on('response', (res) => {
          let body = '';
          res.on('data', (d: Buffer) => { body += d.toString(); });
          res.on('end', () => resolve(`${res.statusCode} ${res.headers['content-length']} ${body}`));
        });
        req.on('error', reject);
        req.end();
      });
      const legacyUpgrade = await answer({ Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') });
      t.equal(legacyUpgrade, '404 9 Not Found');
      t.equal(await answer({}), legacyUpgrade, 'the same 404 as a plain GET');
    });

    t.test(`[${engine}] a tws-rust client recovers when tws server --legacy restarts`, async (t) => {
      const echo = await echoServer();
      const sport = await freePort();
      let server = await runCli(['server', '-l', `127.0.0.1:${sport}`, '--engine', engine, '--legacy']);
      const { rust, port } = await rustClient(sport, echo.addr);
      t.teardown(async () => { await rust.stop(); await server.stop('SIGKILL'); await echo.close(); });
      await bothUp(server, rust);
      const data = randomBytes(100_000);
      t.equal(sha256(await echoExactly(port, data)), sha256(data), 'before the restart');
      await server.stop('SIGKILL');
      server = await runCli(['server', '-l', `127.0.0.1:${sport}`, '--engine', engine, '--legacy']);
      await bothUp(server, rust, 4, 20_000);
      t.equal(sha256(await echoExactly(port, data)), sha256(data), 'after the restart');
    });

    t.test(`[${engine}] tws client --legacy to a tws-rust server: 20 streams intact, UDP, refused target, restart`, async (t) => {
      const echo = await echoServer();
      const udp = await udpEcho();
      let { rust, port: sport } = await rustServer();
      const client = await legacyClient(engine, sport, `localhost:${echo.port}`, ['--metrics', '127.0.0.1:0']);
      t.teardown(async () => { await client.stop('SIGKILL'); await rust.stop(); await echo.close(); udp.sock.close(); });
      await client.waitLog(/(?:[\s\S]*?session#\d+ \(tws-rust\) up → ws:\/\/127\.0\.0\.1:\d+\/ \(slot \d, tws-rust → 127\.0\.0\.1:\d+\)){2}/);
      const results = await twentyStreams(client.port);
      t.same(results, results.map(() => true), 'every stream intact both ways');
      await client.waitLog(/session#\d+ \(tws-rust\) stream#\d+ closed \(fin\)/);
      const m = await scrapeWhen(await metricsPort(client), (b) => /tws_protocol_sessions\{protocol="tws-rust"\} 2/.test(b));
      t.match(m.body, /tws_protocol_sessions_opened_total\{protocol="tws-rust"\} 2/);

      // UDP through our client's UDP listener.
      const udpClient = await legacyClient(engine, sport, udp.addr, ['-c', '1']);
      t.teardown(() => udpClient.stop('SIGKILL'));
      await udpClient.waitLog(/\(tws-rust\) up →/);
      t.same(await exchange(udpClient.port, ['one', 'two']), ['echo:one', 'echo:two'], 'datagrams both ways');

      // A target the tws-rust server cannot reach: the local socket closes.
      const refusing = await legacyClient(engine, sport, `127.0.0.1:${await freePort()}`, ['-c', '1']);
      t.teardown(() => refusing.stop('SIGKILL'));
      await refusing.waitLog(/\(tws-rust\) up →/);
      const { data } = await howItEnds(connect({ port: refusing.port, host: '127.0.0.1' }));
      t.equal(data.length, 0, 'nothing from a refused target');
      await refusing.waitLog(/\(tws-rust\) stream#\d+ closed \(refused: closed by the server\)/);

      // The tws-rust server restarts on the same port: the client's slots come back.
      await rust.stop();
      await client.waitLog(/\(tws-rust\) down/);
      ({ rust } = await rustServer(sport));
      await client.waitLog(/(?:[\s\S]*?\(tws-rust\) down[\s\S]*?){2}(?:[\s\S]*?\(tws-rust\) up →){2}/, 20_000);
      const after = randomBytes(200_000);
      t.equal(sha256(await echoExactly(client.port, after)), sha256(after), 'a stream after the restart');
      t.notMatch(client.logs(), new RegExp(PASSWD), 'the password never reaches the log');
    });

    t.test(`[${engine}] tws client --legacy with the wrong password says so and retries`, async (t) => {
      const { rust, port } = await rustServer();
      const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${port}/`, '-r', '127.0.0.1:1', '--legacy',
        '--engine', engine, '-c', '1'], { TWS_PASSWD: 'wrong-password' });
      t.teardown(async () => { await client.stop('SIGKILL'); await rust.stop(); });
      await client.waitLog(/slot 1: cannot connect to ws:\/\/127\.0\.0\.1:\d+\/: tws-rust handshake failed: .*wrong password/);
      t.notMatch(client.logs(), /up →/, 'no session came up');
      t.notMatch(client.logs(), /wrong-password/, 'the password never reaches the log');
    });
  }
}

/** A raw tws-rust client written for these tests: it sends whatever it is told, right or wrong. */
interface LegacyPeer {
  ws: WebSocket;
  texts: string[];
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves once a Text message equal to `text` came. */
  text(text: string, timeoutMs?: number): Promise<void>;
  handshake(nowMs?: number): void;
}

function legacyPeer(port: number): Promise<LegacyPeer> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
  const texts: string[] = [];
  ws.on('message', (data: Buffer, isBinary) => { if (!isBinary) texts.push(data.toString()); });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => resolve({
      ws, texts, closed,
      text: async (want, timeoutMs = 10_000) => {
        if (!await waitFor(() => texts.includes(want), timeoutMs)) throw new Error(`no ${JSON.stringify(want)}; got ${JSON.stringify(texts)}`);
      },
      handshake: (nowMs = Date.now()) => ws.send(authMessage(PASSWD, handshakeBody(nowMs, '127.0.0.1:1'))),
    }));
  });
}

/** A peer that is up, with a TARGET of `target`. */
async function upPeer(port: number, target: string): Promise<LegacyPeer> {
  const p = await legacyPeer(port);
  p.ws.send(authMessage(PASSWD, handshakeBody(Date.now(), target)));
  await p.text('hello');
  return p;
}

/** A tws-rust client's upgrade on a plain socket that never reads (frames are written with clientFrame). */
function rawLegacy(port: number): Socket {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.pause();
  socket.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  return socket;
}

function hostile(): void {
  for (const engine of engines()) {
    t.test(`[${engine}] tws server --legacy refuses a bad MAC, a NOW outside ±5 s either way, data first, a huge Text, silence`, async (t) => {
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '-t', '1000']);
      t.teardown(() => server.stop('SIGKILL'));
      const cases: [string, (p: LegacyPeer) => void, number, RegExp][] = [
        ['bad MAC', (p) => p.ws.send(authMessage('not-the-password', handshakeBody(Date.now(), '127.0.0.1:1'))), 1008, /bad MAC/],
        ['stale NOW', (p) => p.handshake(Date.now() - 6000), 1008, /NOW is 6 s behind our clock/],
        ['future NOW', (p) => p.handshake(Date.now() + 6000), 1008, /NOW is 6 s ahead of our clock/],
        ['data first', (p) => p.ws.send(Buffer.from('Pabcdefdata')), 1002, /data before the handshake/],
        // ws closes these itself, with no reason: the log says it (below).
        ['huge Text', (p) => p.ws.send(`AUTH ${'x'.repeat(100_000)}`), 1009, /^$/],
        ['oversized message', (p) => p.ws.send(Buffer.alloc(2 * 1024 * 1024)), 1009, /.*/],
        // Before its handshake a peer is held to the handshake's size: an unfinished long message is cut at once, not held until -t.
        ['unfinished long message', (p) => p.ws.send(Buffer.alloc(1000, 0x41), { binary: false, fin: false }), 1009, /^$/],
        ['silence', () => undefined, 1008, /no handshake within 1000 ms/],
      ];
      for (const [name, act, code, why] of cases) {
        const p = await legacyPeer(server.port);
        act(p);
        const c = await Promise.race([p.closed, new Promise<{ code: number; reason: string }>((r) => setTimeout(() => r({ code: 0, reason: 'still open after 10 s' }), 10_000))]);
        p.ws.terminate();
        t.equal(c.code, code, `${name}: closed ${code}`);
        t.match(c.reason, why, name);
        t.notOk(p.texts.includes('hello'), `${name}: no hello`);
      }
      await server.waitLog(/refused tws-rust session from .*no handshake within 1000 ms/);
      await server.waitLog(/refused tws-rust session from .*message over 512 bytes \(closed 1009\)/);
      t.notMatch(server.logs(), /\(tws-rust\) up from/, 'no session came up');
    });

    t.test(`[${engine}] after the handshake: an unsigned NEW CONNECTION, a bad or duplicate id each close the session; unknown ids are dropped`, async (t) => {
      const echo = await echoServer();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy']);
      t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); });
      // Unknown ids: data and CONNECTION messages for streams that do not exist are dropped, the session carries on.
      const ok = await upPeer(server.port, echo.addr);
      ok.ws.send(Buffer.from('PzzzzzzIGNORED'));
      ok.ws.send('CONNECTION zzzzzz CLOSED');
      ok.ws.send(authMessage(PASSWD, newConnectionBody('abc123', false)));
      await ok.text('CONNECTION abc123 OK');
      const got: Buffer[] = [];
      ok.ws.on('message', (d: Buffer, bin) => { if (bin) got.push(d); });
      ok.ws.send(Buffer.from('Pabc123ping'));
      t.ok(await waitFor(() => Buffer.concat(got).toString() === 'Pabc123ping'), 'the echo came back on the stream');
      // The same id again while it is open.
      ok.ws.send(authMessage(PASSWD, newConnectionBody('abc123', false)));
      t.same(await ok.closed, { code: 1002, reason: 'stream id abc123 is already open' });

      const cases: [string, string, number, RegExp][] = [
        ['unsigned', authMessage('not-the-password', newConnectionBody('abcdef', false)), 1008, /bad MAC on a message/],
        ['bad id', authMessage(PASSWD, 'NEW CONNECTION ab\ncd'), 1002, /bad stream id|unknown authenticated/],
        ['long Text', `CONNECTION ${'x'.repeat(600)}`, 1009, /text message of 611 characters/],
        ['unknown Text', 'FORGED\n2026-01-01T00:00:00.000Z INFO  session#1 up', 1002, /unknown message/],
      ];
      for (const [name, msg, code, why] of cases) {
        const p = await upPeer(server.port, echo.addr);
        p.ws.send(msg);
        const c = await p.closed;
        t.equal(c.code, code, `${name}: closed ${code}`);
        t.match(c.reason, why, name);
      }
      await server.waitLog(/\(tws-rust\) down \(1002 unknown message "FORGED\\n2026/);
      t.notMatch(server.logs(), /^FORGED/m, 'the forged line was escaped');
      t.notMatch(server.logs(), new RegExp(PASSWD), 'the password never reaches the log');
    });

    t.test(`[${engine}] tws client --legacy over wss:// to tws server --legacy --tls-cert: TLS on both ends`, { skip: needs('openssl') }, async (t) => {
      const dir = t.testdir({});
      const ca = makeCa(dir, 'legacy-ca');
      const leaf = makeCert(dir, ca, 'leaf', ['localhost', '127.0.0.1']);
      const echo = await echoServer();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '--tls-cert', leaf.cert, '--tls-key', leaf.key]);
      t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); });
      const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `wss://localhost:${server.port}/`, '-r', echo.addr, '--ca', ca.cert,
        '--legacy', '--engine', engine, '-c', '1']);
      t.teardown(() => client.stop('SIGKILL'));
      await client.waitLog(/\(tws-rust\) up → wss:\/\/localhost:\d+\/ \(slot 1, tws-rust → 127\.0\.0\.1:\d+, TLS in Node\)/);
      const data = randomBytes(3_000_000);
      t.equal(sha256(await echoExactly(client.port, data)), sha256(data), 'a stream through TLS intact');
      await server.waitLog(/\(tws-rust\) up from/);
    });

    t.test(`[${engine}] tws-rust sessions up over --tls-cert stop counting as connections waiting for their upgrade`,
      { skip: needs('openssl') || needs('prlimit') }, async (t) => {
        // 256 fds: 10 connections may wait for their upgrade. A tws-rust session on the native engine's TLS front keeps
        // its front open for its life; up, it must not hold one of those 10, or 10 sessions lock everyone out.
        const dir = t.testdir({});
        const ca = makeCa(dir, 'legacy-ca');
        const leaf = makeCert(dir, ca, 'leaf', ['localhost', '127.0.0.1']);
        const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '--tls-cert', leaf.cert, '--tls-key', leaf.key],
          {}, undefined, ['prlimit', '--nofile=256:256']);
        const peers: WebSocket[] = [];
        t.teardown(async () => { for (const ws of peers) ws.terminate(); await server.stop('SIGKILL'); });
        await server.waitLog(/connections waiting for their upgrade/);
        const m = /and (\d+) connections waiting for their upgrade/.exec(server.logs());
        const pending = Number(m![1]);
        const up: boolean[] = [];
        for (let i = 0; i < pending + 5; i++) {
          up.push(await new Promise<boolean>((resolve) => {
            const ws = new WebSocket(`wss://localhost:${server.port}/`, { ca: readFileSync(ca.cert), perMessageDeflate: false });
            peers.push(ws);
            ws.on('error', () => resolve(false));
            ws.on('open', () => ws.send(authMessage(PASSWD, handshakeBody(Date.now(), '127.0.0.1:9'))));
            ws.on('message', (d) => { if (String(d) === 'hello') resolve(true); });
          }));
        }
        t.same(up, up.map(() => true), `${pending + 5} tws-rust sessions up with ${pending} connections allowed to wait for their upgrade`);
        t.notMatch(server.logs(), /dropped/, 'no connection dropped');
      });

    t.test(`[${engine}] --legacy with only --users refuses tws-rust clients (no user name) with the prober's 404, and says so at start`, async (t) => {
      const dir = t.testdir({ 'users.yaml': `alice:\n  passwd: a-secret\n` });
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '--users', join(dir, 'users.yaml')], { TWS_PASSWD: '' });
      t.teardown(() => server.stop('SIGKILL'));
      await server.waitLog(/--legacy: this server has only --users and no shared password: tws-rust clients .* will be refused/);
      await t.rejects(legacyPeer(server.port), { message: /Unexpected server response: 404/ });
      await server.waitLog(/refused upgrade from .*: a tws-rust client \(no user name\) on a server with only --users \(answered 404\)/);
    });

    t.test(`[${engine}] --idle-timeout ends an idle tws-rust stream with CLOSED`, async (t) => {
      const echo = await echoServer();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '--idle-timeout', '300', '-t', '500']);
      t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); });
      const p = await upPeer(server.port, echo.addr);
      p.ws.send(authMessage(PASSWD, newConnectionBody('idle01', false)));
      await p.text('CONNECTION idle01 OK');
      await p.text('CONNECTION idle01 CLOSED', 5000);
      await server.waitLog(/\(tws-rust\) stream#1 closed \(idle\)/);
    });

    t.test(`[${engine}] a tws-rust peer that never reads cannot pile up our answers: we stop reading it`, async (t) => {
      // Every NEW UDP CONNECTION is answered CLOSED (--no-udp): small requests, small answers, which a peer that
      // never reads would make us queue without end. Kernel buffers take some MB of each; past them we must stop.
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '--no-udp']);
      const socket = rawLegacy(server.port);
      t.teardown(async () => { socket.destroy(); await server.stop('SIGKILL'); });
      socket.write(clientFrame(1, Buffer.from(authMessage(PASSWD, handshakeBody(Date.now(), '127.0.0.1:9')))));
      await server.waitLog(/\(tws-rust\) up from/);
      const LIMIT = 60e6;
      let sent = 0;
      let n = 0;
      let stopped = false;
      while (sent < LIMIT && !stopped) {
        const batch = Array.from({ length: 500 }, () => clientFrame(1, Buffer.from(authMessage(PASSWD, newConnectionBody(idFrom(Buffer.from([n, n >> 6, n >> 12, n >> 18, n++ >> 24, 7])), true))), true, true));
        const b = Buffer.concat(batch);
        sent += b.length;
        if (!socket.write(b)) stopped = !await Promise.race([new Promise((r) => socket.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 3000))]);
      }
      // About 20 MB here: the kernel's buffers both ways, and 4 MiB of answers weighed (UNSENT_LIMIT). Without the limit it read on.
      t.ok(stopped && sent < 30e6, `the server stopped reading a peer that reads nothing after ${(sent / 1e6).toFixed(0)} MB of requests (at most 30 MB)`);
      const rss = rssMiB(server.proc.pid!);
      t.ok(rss < 400, `server RSS ${rss.toFixed(0)} MiB`);
    });

    t.test(`[${engine}] a tws-rust peer that pings and never reads, before its handshake, cannot pile up our pongs`, async (t) => {
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '-t', '30000']);
      const socket = rawLegacy(server.port);
      t.teardown(async () => { socket.destroy(); await server.stop('SIGKILL'); });
      const before = rssMiB(server.proc.pid!);
      // 20 MB of empty pings (6 bytes each, masked with the key 0): each would be a pong of its own.
      const pings = Buffer.concat(Array.from({ length: 10_000 }, () => clientFrame(9, Buffer.alloc(0), true, true)));
      for (let sent = 0; sent < 20e6 && !socket.destroyed; sent += pings.length) {
        if (!socket.write(pings)) await Promise.race([new Promise((r) => socket.once('drain', r)), new Promise((r) => setTimeout(r, 3000))]);
      }
      // ws answers the pings it has read; the last of them are read by now or soon.
      await new Promise((r) => setImmediate(r));
      t.notOk(socket.destroyed, 'the connection is still up (pings are allowed)');
      const grown = rssMiB(server.proc.pid!) - before;
      t.ok(grown < 60, `server RSS grew ${grown.toFixed(0)} MiB for 20 MB of pings (one pong queued at most)`);
    });

    t.test(`[${engine}] early data on many streams counts against the session budget: we stop reading the peer`, async (t) => {
      // Streams to a target that never accepts stay opening; each may hold 256 KiB early: past the session's
      // 64 MiB we must stop reading, as for data queued to open streams. Enough streams to pass the budget by
      // more than the kernel can buffer on the way (its autotuned receive buffer may grow to tcp_rmem's maximum).
      const streams = Math.ceil((64 * 2 ** 20 + loopbackBuffering() + 16 * 2 ** 20) / (250 * 1024));
      const hang = await hangingTarget();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '--connect-timeout', '60000', '-t', '60000']);
      const socket = rawLegacy(server.port);
      t.teardown(async () => { socket.destroy(); await server.stop('SIGKILL'); await hang.close(); });
      socket.write(clientFrame(1, Buffer.from(authMessage(PASSWD, handshakeBody(Date.now(), hang.addr)))));
      await server.waitLog(/\(tws-rust\) up from/);
      const ids = Array.from({ length: streams }, (_, i) => `e${String(i).padStart(5, '0')}`);
      socket.write(Buffer.concat(ids.map((id) => clientFrame(1, Buffer.from(authMessage(PASSWD, newConnectionBody(id, false)))))));
      const early = Buffer.alloc(250 * 1024, 0x45);
      let sent = 0;
      let stopped = false;
      for (const id of ids) {
        const frame = clientFrame(2, Buffer.concat([Buffer.from(`P${id}`), early]), true, true);
        sent += frame.length;
        if (!socket.write(frame)) stopped = !await Promise.race([new Promise((r) => socket.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 3000))]);
        if (stopped) break;
      }
      t.ok(stopped, `the server stopped reading after ${(sent / 1e6).toFixed(0)} MB of early data on ${ids.length} opening streams`);
      t.notOk(socket.destroyed, 'the session is up: the streams were opening, holding their early data');
      t.notMatch(server.logs(), /stream#\d+ closed/, 'no stream ended');
    });

    t.test(`[${engine}] what a closed stream's socket still holds counts against the budget while it lingers`, async (t) => {
      // A target that never reads; each stream gets 7.5 MiB (past PAUSE, below the 8 MiB flood limit), then the
      // peer's CLOSED: the socket lingers (up to 10 s) with what it holds. 60 of them would be 450 MiB for one session.
      const sink = await tcpServer((s) => s.pause());
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '-t', '60000']);
      const p = await upPeer(server.port, sink.addr);
      t.teardown(async () => { p.ws.terminate(); await server.stop('SIGKILL'); await sink.close(); });
      // Growth, not the total: under the sanitizer pass the process starts far larger.
      const rss0 = rssMiB(server.proc.pid!);
      const chunk = Buffer.alloc(256 * 1024, 0x4c);
      let i = 0;
      let stopped = false;
      for (; i < 60 && !stopped; i++) {
        const id = `L${String(i).padStart(5, '0')}`;
        p.ws.send(authMessage(PASSWD, newConnectionBody(id, false)));
        if (!await waitFor(() => p.texts.includes(`CONNECTION ${id} OK`), 3000)) stopped = true;
        for (let k = 0; k < 30 && !stopped; k++) {
          p.ws.send(Buffer.concat([Buffer.from(`P${id}`), chunk]));
          if (p.ws.bufferedAmount > 4 * 1024 * 1024 && !await waitFor(() => p.ws.bufferedAmount < 1024 * 1024, 3000)) stopped = true;
        }
        p.ws.send(`CONNECTION ${id} CLOSED`);
      }
      t.ok(stopped, `the server stopped reading at stream ${i} of 60 (7.5 MiB each, closed by the peer, lingering)`);
      t.notMatch(server.logs(), /flooded/, 'no stream was closed for flooding');
      const grew = rssMiB(server.proc.pid!) - rss0;
      t.ok(grew < 250, `server RSS grew ${grew.toFixed(0)} MiB (from ${rss0.toFixed(0)} MiB)`);
    });

    t.test(`[${engine}] a tws-rust peer flooding a stream past PAUSE gets that stream closed; the session and memory stay`, async (t) => {
      // A target that never reads: everything the peer sends piles up in front of it.
      const sink = await tcpServer((s) => s.pause());
      const echo = await echoServer();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy']);
      t.teardown(async () => { await server.stop('SIGKILL'); await sink.close(); await echo.close(); });
      const p = await upPeer(server.port, sink.addr);
      p.ws.send(authMessage(PASSWD, newConnectionBody('flood1', false)));
      await p.text('CONNECTION flood1 OK');
      const chunk = Buffer.concat([Buffer.from('Pflood1'), Buffer.alloc(64 * 1024, 0x41)]);
      // 40 MiB, ignoring PAUSE as tws-rust's inverted throttle does; stopped once the stream is closed.
      for (let i = 0; i < 640 && !p.texts.includes('CONNECTION flood1 CLOSED'); i++) {
        p.ws.send(chunk);
        if (i % 32 === 31) await waitFor(() => p.ws.bufferedAmount < 1024 * 1024);
      }
      await p.text('CONNECTION flood1 PAUSE');
      await p.text('CONNECTION flood1 CLOSED', 20_000);
      t.ok(p.texts.indexOf('CONNECTION flood1 PAUSE') < p.texts.indexOf('CONNECTION flood1 CLOSED'), 'PAUSE first, then CLOSED');
      await server.waitLog(/\(tws-rust\) stream#1 closed \(flooded: \d+ bytes queued after PAUSE\)/);
      const rss = rssMiB(server.proc.pid!);
      t.ok(rss < 400, `server RSS ${rss.toFixed(0)} MiB after a 40 MiB flood`);
      t.equal(p.ws.readyState, WebSocket.OPEN, 'the session stays up');
    });

    t.test(`[${engine}] datagrams a tws-rust session drops for a peer that does not read are counted in tws_datagrams_dropped_total`, async (t) => {
      // The UDP target answers our one datagram with a flood, from a process of its own.
      const flooder = spawn(process.execPath, ['-e', `
        const s = require('dgram').createSocket('udp4');
        const payload = Buffer.alloc(1200, 7);
        s.once('message', (m, r) => {
          const until = Date.now() + 20000;
          const burst = () => {
            for (let i = 0; i < 200; i++) s.send(payload, r.port, r.address);
            if (Date.now() < until) setImmediate(burst);
          };
          burst();
        });
        s.bind(0, '127.0.0.1', () => console.log(s.address().port));
      `], { stdio: ['ignore', 'pipe', 'inherit'] });
      const udpPort = await new Promise<number>((resolve) => flooder.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--legacy', '--metrics', '127.0.0.1:0']);
      const socket = rawLegacy(server.port);  // paused: it never reads what the server sends
      t.teardown(async () => { flooder.kill('SIGKILL'); socket.destroy(); await server.stop('SIGKILL'); });
      socket.write(clientFrame(1, Buffer.from(authMessage(PASSWD, handshakeBody(Date.now(), `127.0.0.1:${udpPort}`)))));
      await server.waitLog(/\(tws-rust\) up from/);
      const id = idFrom(randomBytes(6));
      socket.write(clientFrame(1, Buffer.from(authMessage(PASSWD, newConnectionBody(id, true)))));
      await server.waitLog(/\(tws-rust\) stream#\d+ open → udp /);
      socket.write(clientFrame(2, Buffer.concat([dataHeader('U', id), Buffer.from('go')])));
      // The kernel's buffers fill, then 1 MiB waits in ws (SEND_HIGH): every datagram after that is dropped, and counted.
      const m = await scrapeWhen(await metricsPort(server), (b) => (value(b, 'tws_datagrams_dropped_total') ?? 0) > 1000, 20_000);
      t.ok(value(m.body, 'tws_datagrams_dropped_total')! > 1000, `tws_datagrams_dropped_total ${value(m.body, 'tws_datagrams_dropped_total')}`);
    });
  }
}
