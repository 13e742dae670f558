/**
 * Answer ahead (src/server/answer-ahead.ts): a server session without an
 * allow-list lets its engine dial tcp streams to IP literals without asking
 * JavaScript. From the outside nothing may differ: the same answers, log
 * lines, metrics and fd-budget slots, on both engines; and a policy that
 * gains an allow-list (a reload) is obeyed from the reload on.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { buildAuthHeader } from '../../src/auth/tws-auth';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { metricsPort, scrapeWhen, value } from '../helpers/metrics';
import { echoServer, hangingTarget, tcpServer } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';
import { RawPeer, rawPeer } from '../helpers/raw-peer';
import { afterHead, clientFrame, closePayload, rawWs } from '../helpers/raw-ws';
import { needs } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

const answered = (id: number) => (f: Frame): boolean => f.stream === id && (f.type === 'open-ok' || f.type === 'reset');

/** Opens tcp stream `id` to `target` and says how it was answered: `ok` or `reset N`. */
async function open(p: RawPeer, id: number, target: string): Promise<string> {
  p.send(codec.encodeOpen(id, 65536, StreamKind.TCP, target));
  const f = await p.next(answered(id), 15_000);
  return f.type === 'reset' ? `reset ${(f as { code: number }).code}` : 'ok';
}

/** A target that counts the connections it ever got. */
async function countingTarget(): Promise<{ addr: string; port: number; connections: () => number; close(): Promise<void> }> {
  let n = 0;
  const srv = await tcpServer(() => { n++; });
  return { addr: srv.addr, port: srv.port, connections: () => n, close: () => srv.close() };
}

for (const engine of engines()) {
  t.test(`[${engine}] streams to IP literals without an allow-list: open lines, metrics, and every stream ends`, async (t) => {
    const echo = await echoServer();
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--metrics', '127.0.0.1:0']);
    t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); });
    const mport = await metricsPort(server);
    const p = await rawPeer(server.port);
    const n = 40;
    const answers: string[] = [];
    for (let i = 0; i < n; i++) answers.push(await open(p, 1 + 2 * i, echo.addr));
    t.same(answers, answers.map(() => 'ok'), `${n} streams opened`);
    const first = await server.waitLog(/stream#1 open → 127\.0\.0\.1:\d+/);
    t.match(first, `open → ${echo.addr}`, 'the open line names the target');
    // Half end with a RESET from us, the rest with the session.
    for (let i = 0; i < n / 2; i++) p.send(codec.encodeReset(1 + 2 * i, 6, 'cancelled'));
    await scrapeWhen(mport, (b) => (value(b, 'tws_streams_closed_total{how="peer_reset"}') ?? 0) >= n / 2);
    p.ws.close();
    const body = (await scrapeWhen(mport, (b) => value(b, 'tws_streams') === 0 && (value(b, 'tws_streams_closed_total{how="session_ended"}') ?? 0) >= n / 2)).body;
    t.equal(value(body, 'tws_streams_closed_total{how="peer_reset"}'), n / 2, 'the streams we reset are counted');
    t.equal(value(body, 'tws_streams_closed_total{how="session_ended"}'), n / 2, 'the streams the session took along are counted');
  });

  t.test(`[${engine}] with --allow or a user's allow-list, a denied IP literal is never dialled: RESET 1`, async (t) => {
    const echo = await echoServer();
    const hold = await countingTarget();
    const dir = t.testdir({ 'users.yaml': `bob:\n  passwd: bob-secret\n  allow: ["127.0.0.1:${echo.port}"]\n` });
    const wide = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--allow', `127.0.0.1:${echo.port}`]);
    const perUser = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', join(dir, 'users.yaml')]);
    t.teardown(async () => { await wide.stop('SIGKILL'); await perUser.stop('SIGKILL'); await echo.close(); await hold.close(); });
    for (const [name, peer] of [['--allow', await rawPeer(wide.port)], ['a user\'s allow', await rawPeer(perUser.port, { auth: buildAuthHeader('bob-secret', 'bob') })]] as const) {
      t.equal(await open(peer, 1, echo.addr), 'ok', `${name}: the allowed target opens`);
      for (let id = 3; id < 23; id += 2) t.equal(await open(peer, id, hold.addr), 'reset 1', `${name}: a denied target gets RESET 1`);
      peer.ws.close();
    }
    await wide.waitLog(/denied → 127\.0\.0\.1:\d+: not allowed/);
    await perUser.waitLog(/denied → 127\.0\.0\.1:\d+: not allowed/);
    t.equal(hold.connections(), 0, 'the denied target never saw a connection');
  });

  t.test(`[${engine}] a reload that gives a user an allow-list is obeyed by the sessions already up`, async (t) => {
    const echo = await echoServer();
    const hold = await countingTarget();
    const dir = t.testdir({});
    const file = join(dir, 'users.yaml');
    writeFileSync(file, 'bob:\n  passwd: bob-secret\n');
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', file]);
    t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); await hold.close(); });
    const p = await rawPeer(server.port, { auth: buildAuthHeader('bob-secret', 'bob') });
    t.equal(await open(p, 1, hold.addr), 'ok', 'no allow-list: any target opens');
    t.equal(await open(p, 3, echo.addr), 'ok');
    const before = hold.connections();
    writeFileSync(file, `bob:\n  passwd: bob-secret\n  allow: ["127.0.0.1:${echo.port}"]\n`);
    server.proc.kill('SIGHUP');
    t.match(await server.waitLog(/SIGHUP: reloaded users from .*/), /1 session\(s\) kept, 0 closed/);
    for (let id = 5; id < 45; id += 2) t.equal(await open(p, id, hold.addr), 'reset 1', `stream ${id}: denied after the reload`);
    t.equal(await open(p, 45, echo.addr), 'ok', 'the target the new list allows still opens');
    t.equal(hold.connections(), before, 'no connection reached the target the reload denied');
    // And back: no allow-list again, the same session reaches everything again.
    writeFileSync(file, 'bob:\n  passwd: bob-secret\n');
    server.proc.kill('SIGHUP');
    await server.waitLog(/(?:SIGHUP: reloaded users[\s\S]*?){2}/);
    t.equal(await open(p, 47, hold.addr), 'ok', 'allowed again after the second reload');
    p.ws.close();
  });

  t.test(`[${engine}] a reload that removes a user: what its session sends after the close frame opens nothing`, async (t) => {
    const target = await countingTarget();
    const dir = t.testdir({});
    const file = join(dir, 'users.yaml');
    writeFileSync(file, 'bob:\n  passwd: bob-secret\nalice:\n  passwd: alice-secret\n');
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', file]);
    t.teardown(async () => { await server.stop('SIGKILL'); await target.close(); });
    const openFrame = (id: number): Buffer => clientFrame(2, codec.encodeOpen(id, 65536, StreamKind.TCP, target.addr));
    // A peer at the byte level: `ws` would stop sending once the server's close frame came.
    const bob = await rawWs(server.port, { auth: buildAuthHeader('bob-secret', 'bob') });
    t.teardown(() => bob.close());
    bob.socket.write(openFrame(1));
    t.ok(await waitFor(() => target.connections() === 1), 'bob reaches the target');
    writeFileSync(file, 'alice:\n  passwd: alice-secret\n');
    server.proc.kill('SIGHUP');
    t.match(await server.waitLog(/SIGHUP: reloaded users from .*/), /0 session\(s\) kept, 1 closed/);
    await bob.until((got) => afterHead(got).frames.some((f) => f.opcode === 8), 10_000);
    // Bob goes on as if nothing happened (his close frame, in the same read, would end the streams before any dial).
    bob.socket.write(Buffer.concat(Array.from({ length: 20 }, (_, i) => openFrame(3 + 2 * i))));
    // A stream of another user's, opened after (a new connection, its handshake and all): by the time it
    // reaches the target, any dial of bob's would have.
    const alice = await rawPeer(server.port, { auth: buildAuthHeader('alice-secret', 'alice') });
    t.equal(await open(alice, 1, target.addr), 'ok', 'a user still there opens streams');
    t.ok(await waitFor(() => target.connections() >= 2), 'her connection arrived');
    bob.socket.write(clientFrame(8, closePayload(1000)));
    await bob.ended;
    t.equal(target.connections(), 2, 'no OPEN of the removed user\'s reached the target after the close frame');
    alice.ws.close();
  });

  t.test(`[${engine}] targets in other spellings go the usual way: the same answers on both engines`, async (t) => {
    const echo = await echoServer();
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); });
    const p = await rawPeer(server.port);
    const spellings: [string, string][] = [
      [`127.000.000.001:${echo.port}`, 'ok'],
      [`[::FFFF:127.0.0.1]:${echo.port}`, 'ok'],
      [`[::ffff:127.0.0.1]:${echo.port}`, 'ok'],
      [`127.1:${echo.port}`, 'ok'],
      [`127.0.0.1:0${echo.port}`, 'reset 2'],  // six digits
      [`[0:0::1]:${echo.port}`, 'reset 2'],  // ::1, where nothing listens
      [`0.0.0.0:${echo.port}`, 'reset 2'],
      [`[::]:${echo.port}`, 'reset 2'],
      [`127.0.0.1:0`, 'reset 2'],
      [`127.0.0.1:65536`, 'reset 2'],
      [`[fe80::1%lo]:${echo.port}`, 'reset 2'],
      [echo.addr, 'ok'],
      ['127.0.0.1:1', 'reset 2'],  // canonical, refused by the target
      [`[::1]:${echo.port}`, 'reset 2'],
    ];
    let id = 1;
    for (const [target, expected] of spellings) {
      t.equal(await open(p, id, target), expected, `${target}: ${expected}`);
      id += 2;
    }
    const refused = p.frames.find((f) => f.stream === id - 4 && f.type === 'reset') as { reason: string };
    t.equal(refused.reason, 'connect failed: ECONNREFUSED', 'a failed connect is answered as before');
    p.ws.close();
  });

  t.test(`[${engine}] the fd budget: a reserve never refuses a reverse tunnel's connection the session's share would take`, { skip: needs('prlimit') }, async (t) => {
    const echo = await echoServer();
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--allow-reverse', '127.0.0.1:*'], {}, undefined, ['prlimit', '--nofile=256:256']);
    t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); });
    const perSession = Number(/\((\d+) per session\)/.exec(await server.waitLog(/file descriptor limit 256: .*/))![1]);
    const p = await rawPeer(server.port);
    t.teardown(() => p.ws.close());
    // All of the session's share but one slot, held by streams (taken ahead, on the native engine).
    for (let i = 0; i < perSession - 1; i++) t.equal(await open(p, 1 + 2 * i, echo.addr), 'ok');
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    p.send(codec.encodeControl({ type: 'listen', stream: 0, request: 1, token: randomBytes(16), bind: `127.0.0.1:${port}` }));
    t.match(await p.next((f) => f.type === 'listen-ok' || f.type === 'listen-err'), { type: 'listen-ok' }, 'the server listens');
    const conn = connect(port, '127.0.0.1');
    conn.on('error', () => undefined);
    t.teardown(() => conn.destroy());
    const how = await Promise.race([
      p.next((f) => f.type === 'open', 10_000).then(() => 'carried'),
      new Promise<string>((resolve) => conn.once('close', () => resolve('closed'))),
    ]);
    t.equal(how, 'carried', 'the last slot of the share carries the connection');
  });

  t.test(`[${engine}] the fd budget: no slot is lost to OPENs reset at once, failed or timed-out connects, or reloads mid-dial`, { skip: needs('prlimit') }, async (t) => {
    const echo = await echoServer();
    const hang = await hangingTarget();
    const dir = t.testdir({});
    const file = join(dir, 'users.yaml');
    writeFileSync(file, 'bob:\n  passwd: bob-secret\n');
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', file, '--connect-timeout', '300'], {}, undefined, ['prlimit', '--nofile=256:256']);
    t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); await hang.close(); });
    const perSession = Number(/\((\d+) per session\)/.exec(await server.waitLog(/file descriptor limit 256: .*/))![1]);
    for (let round = 0; round < 4; round++) {
      const p = await rawPeer(server.port, { auth: buildAuthHeader('bob-secret', 'bob') });
      // OPENs the peer resets before any answer, in the same read.
      for (let i = 0; i < 30; i++) p.send(codec.encodeOpen(1 + 2 * i, 65536, StreamKind.TCP, echo.addr));
      for (let i = 0; i < 30; i++) p.send(codec.encodeReset(1 + 2 * i, 6, 'cancelled'));
      for (let i = 30; i < 50; i++) t.equal(await open(p, 1 + 2 * i, '127.0.0.1:1'), 'reset 2', 'a refused connect is RESET 2');
      // Connects that never complete time out, some with a reload (revoking the grant) while they wait.
      for (let i = 50; i < 60; i++) p.send(codec.encodeOpen(1 + 2 * i, 65536, StreamKind.TCP, hang.addr));
      if (round % 2 === 0) server.proc.kill('SIGHUP');
      for (let i = 50; i < 60; i++) t.match(await p.next(answered(1 + 2 * i), 5000), { type: 'reset', code: 3 }, 'a connect that hangs times out: RESET 3');
      // Nothing is open now: the session's whole share is there, no more, no less.
      let opened = 0;
      while (await open(p, 121 + 2 * opened, echo.addr) === 'ok') opened++;
      t.equal(opened, perSession, `round ${round}: the session holds exactly its share (${perSession} streams)`);
      p.ws.close();
      await p.closed;
    }
  });

  t.test(`[${engine}] the fd budget: no slot is lost across many sessions, reloads and streams`, { skip: needs('prlimit') }, async (t) => {
    const echo = await echoServer();
    const dir = t.testdir({});
    const file = join(dir, 'users.yaml');
    writeFileSync(file, 'bob:\n  passwd: bob-secret\n');
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--users', file], {}, undefined, ['prlimit', '--nofile=256:256']);
    t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); });
    const plan = /at most (\d+) streams \((\d+) per session\)/.exec(await server.waitLog(/file descriptor limit 256: .*/))!;
    const perUser = Math.ceil(Number(plan[1]) / 2);
    const bob = (): Promise<RawPeer> => rawPeer(server.port, { auth: buildAuthHeader('bob-secret', 'bob') });
    /** Opens streams one by one until one is refused; how many opened. */
    const fill = async (p: RawPeer, from: number): Promise<number> => {
      for (let id = from; ; id += 2) {
        const r = await open(p, id, echo.addr);
        if (r !== 'ok') {
          t.equal(r, 'reset 5', 'the stream past the limit gets RESET 5');
          return (id - from) / 2;
        }
      }
    };
    // Sessions come and go: some fill their share, some end streams themselves, some leave them to the session's end.
    for (let round = 0; round < 6; round++) {
      const p = await bob();
      const opened = await fill(p, 1);
      for (let i = 0; i < opened; i += 2) p.send(codec.encodeReset(1 + 2 * i, 6, 'cancelled'));
      if (round % 2 === 1) {
        server.proc.kill('SIGHUP');  // revokes the grant; what the engine did not use comes back
        await server.waitLog(new RegExp(`(?:SIGHUP: reloaded users[\\s\\S]*?){${(round + 1) / 2}}`));
      }
      t.equal(await open(p, 3 + 2 * opened, echo.addr), "ok", "a stream ended frees a slot for the next");
      p.ws.close();
      await p.closed;
    }
    await server.waitLog(/(?:session#\d+ down[\s\S]*?){6}/);
    // Now two sessions of bob take all of bob's share: exactly that, or a slot was lost.
    const a = await bob();
    const b = await bob();
    const total = (await fill(a, 1)) + (await fill(b, 1));
    t.equal(total, perUser, `bob's sessions hold exactly his share (${perUser} streams) again`);
    a.ws.close();
    b.ws.close();
  });

  // Only the native engine dials ahead (the js engine's sessions always ask).
  if (engine === 'native') {
    t.test(`[${engine}] a peer refused at its own share takes back only its own reserve, not other sessions'`, { skip: needs('prlimit') }, async (t) => {
      const echo = await echoServer();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '-v'], {}, undefined, ['prlimit', '--nofile=256:256']);
      t.teardown(async () => { await server.stop('SIGKILL'); await echo.close(); });
      await server.waitLog(/file descriptor limit 256: .*/);
      const b = await rawPeer(server.port);
      t.teardown(() => b.ws.close());
      // The first session up is session#1; the peer below that fills its share is session#2.
      const inEngine = async (id: number): Promise<boolean> => {
        t.equal(await open(b, id, echo.addr), 'ok', `the other session's stream#${id} opens`);
        return (await server.waitLog(new RegExp(`session#1 stream#${id} connecting [^\\n]*`))).endsWith('(in the engine, answered ahead)');
      };
      // Its grant goes to the engine as the session comes up, so the very first OPEN may come before it.
      let next = 1;
      let ahead = false;
      while (!ahead && next < 10) ahead = await inEngine((next += 2) - 2);
      t.ok(ahead, `the other session dials ahead (stream#${next - 2})`);
      // A fills its share; then OPENs past it, each refused.
      const a = await rawPeer(server.port);
      t.teardown(() => a.ws.close());
      let id = 1;
      while (await open(a, id, echo.addr) === 'ok') id += 2;
      for (let i = 0; i < 20; i++) t.equal(await open(a, (id += 2), echo.addr), 'reset 5', 'past its share: RESET 5');
      t.ok(await inEngine(next), 'the other session still dials ahead: its reserve was not taken back');
    });
  }
}


