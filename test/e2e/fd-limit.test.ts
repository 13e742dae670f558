import t from 'tap';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readdirSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { metricsPort, scrape, value } from '../helpers/metrics';
import { connect, echoServer, roundTrip, sha256, sleep, tcpServer } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';
import { makeCa, makeCert } from '../../bench/certs';
import { rawPeer } from '../helpers/raw-peer';
import { needs } from '../helpers/tools';

const answered = (id: number) => (f: Frame): boolean => f.stream === id && (f.type === 'open-ok' || f.type === 'reset');

for (const engine of engines()) {
  t.test(`[${engine}] under a low fd limit, one session's flood of streams never breaks another session, and every OPEN is answered`,
    { skip: needs('prlimit') }, async (t) => {
      const echo = await echoServer();
      const hold = await tcpServer(() => undefined);
      const sink = createSocket('udp4');
      await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
      const sinkAddr = `127.0.0.1:${(sink.address() as AddressInfo).port}`;
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine], {}, undefined, ['prlimit', '--nofile=256:256']);
      const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', echo.addr, '--engine', engine, '-c', '1']);
      t.teardown(async () => { await client.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close(); await hold.close(); sink.close(); });
      t.match(await server.waitLog(/file descriptor limit 256: .*/), /at most \d+ streams \(\d+ per session\)/, 'the limits are stated at start');
      await client.waitLog(/up → /);

      // The flood: 1500 udp and 500 tcp streams from one session, none closed.
      const flood = await rawPeer(server.port);
      const n = 2000;
      for (let i = 0; i < n; i++) {
        flood.send(codec.encodeOpen(1 + 2 * i, 65536, i % 4 === 3 ? StreamKind.TCP : StreamKind.UDP, i % 4 === 3 ? hold.addr : sinkAddr));
      }
      for (let i = 0; i < n; i++) await flood.next(answered(1 + 2 * i), 20_000);
      const resets = flood.frames.filter((f) => f.type === 'reset') as { code: number; reason: string }[];
      const oks = flood.frames.filter((f) => f.type === 'open-ok').length;
      t.equal(oks + resets.length, n, `every OPEN was answered (${oks} opened, ${resets.length} refused)`);
      t.ok(resets.length > 0 && resets.every((r) => r.code === 5), 'the excess got RESET 5');
      t.match(await server.waitLog(/refused → \S+: session at its share of streams.*/), /a quarter of the server's/, 'with a line saying which limit');

      // Meanwhile the other session still carries data, over several streams at once.
      const data = randomBytes(1 << 20);
      const results = await Promise.all(Array.from({ length: 6 }, () => roundTrip(client.port, data)));
      t.ok(results.every((r) => sha256(r) === sha256(data)), '6 × 1 MiB through the other session, intact');
      flood.ws.close();
    });

  t.test(`[${engine}] a client out of fds resets what it cannot carry; once local connections close, no stream is left and shutdown is prompt`,
    { skip: needs('prlimit') }, async (t) => {
      const echo = await echoServer();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
      const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', echo.addr, '--engine', engine,
        '-c', '1', '--no-udp', '--metrics', '127.0.0.1:0'], {}, undefined, ['prlimit', '--nofile=48:48']);
      const locals: Socket[] = [];
      t.teardown(async () => { locals.forEach((s) => s.destroy()); await client.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close(); });
      const mport = await metricsPort(client);
      await client.waitLog(/up → /);
      // One at a time, until the client is out of fds and local connections are turned away.
      let turnedAway = 0;
      for (let i = 0; i < 80 && turnedAway < 5; i++) {
        const s = connect(client.port, '127.0.0.1');
        s.on('error', () => undefined);
        locals.push(s);
        const ok = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(true), 300);
          s.once('data', () => { clearTimeout(timer); resolve(true); });
          s.once('close', () => { clearTimeout(timer); resolve(false); });
          s.write('x');
        });
        if (!ok) turnedAway++;
      }
      t.ok(turnedAway > 0, `the client ran out of fds (${locals.length - turnedAway} streams carried, ${turnedAway} connections turned away)`);
      // Native: the engine accepts itself (a connection it has no fd for is reset) or JavaScript's handoff fails; either is said.
      if (engine === 'native') {
        t.match(client.logs(), /not opened: cannot hand the local socket to the engine \(EMFILE\)|cannot accept a connection: EMFILE/, 'a failed accept or handoff is said, not ignored');
      }
      // Scrapes while out of fds (process.memoryUsage() itself needs one) must not take the client down.
      for (let i = 0; i < 5; i++) await scrape(mport).catch(() => undefined);
      t.equal(client.proc.exitCode, null, 'metrics scraped while out of fds: the client is still running');
      for (const s of locals) s.destroy();
      let streams: number | undefined;
      for (const until = Date.now() + 10_000; Date.now() < until;) {
        streams = await scrape(mport).then((r) => value(r.body, 'tws_streams'), () => undefined);
        if (streams === 0) break;
        await sleep(100);
      }
      t.equal(streams, 0, `tws_streams is back to 0${streams === 0 ? '' : `; client log:\n${client.logs().slice(-3000)}`}`);
      const started = Date.now();
      t.equal(await client.stop('SIGTERM'), 0, 'SIGTERM exits 0');
      t.ok(Date.now() - started < 3000, `and promptly (${Date.now() - started} ms; the drain timeout is 10 s)`);
    });
}

for (const engine of engines()) {
  t.test(`[${engine}] connections that never finish their upgrade (no password needed) cannot take the fds sessions and streams need`,
    { skip: needs('prlimit') }, async (t) => {
      const echo = await echoServer();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine], {}, undefined, ['prlimit', '--nofile=256:256']);
      const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', echo.addr, '--engine', engine, '-c', '1']);
      const idle: Socket[] = [];
      t.teardown(async () => { idle.forEach((s) => s.destroy()); await client.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close(); });
      await client.waitLog(/up → /);
      // 400 connections with half a request each, held open.
      for (let i = 0; i < 400; i++) {
        const s = connect(server.port, '127.0.0.1');
        s.on('error', () => undefined);
        s.write('GET / HTTP/1.1\r\nHost: x\r\n');
        idle.push(s);
      }
      await server.waitLog(/connection from \S+ dropped: \d+ connections already/);
      const fds = readdirSync(`/proc/${server.proc.pid}/fd`).length;
      t.ok(fds < 150, `the server holds ${fds} fds of 256 (the flood got only the share kept for pending connections)`);
      const data = randomBytes(1 << 20);
      t.equal(sha256(await roundTrip(client.port, data)), sha256(data), 'the established session still carries data, over a new stream');
      t.notMatch(server.logs(), /EMFILE/, 'the server never ran out of fds');
      for (const s of idle) s.destroy();
    });
}

t.test('[native] TLS connections that never finish their handshake are capped too (the engine holds three fds each)',
  { skip: needs('prlimit', 'openssl') || (engines().includes('native') ? false : 'the native engine is not under test') }, async (t) => {
    const dir = t.testdir({});
    const ca = makeCa(dir, 'ca');
    const leaf = makeCert(dir, ca, 'leaf', ['127.0.0.1']);
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', 'native', '--tls-cert', leaf.cert, '--tls-key', leaf.key], {}, undefined,
      ['prlimit', '--nofile=256:256']);
    const idle: Socket[] = [];
    t.teardown(async () => { idle.forEach((s) => s.destroy()); await server.stop('SIGKILL'); });
    await server.waitLog(/TLS in the native engine/);
    for (let i = 0; i < 150; i++) {
      const s = connect(server.port, '127.0.0.1');
      s.on('error', () => undefined);
      idle.push(s);
    }
    await server.waitLog(/connection from \S+ dropped: \d+ connections wait for their upgrade already/);
    const fds = readdirSync(`/proc/${server.proc.pid}/fd`).length;
    t.ok(fds < 150, `the server holds ${fds} fds of 256`);
    t.notMatch(server.logs(), /EMFILE/, 'it never ran out');
  });

