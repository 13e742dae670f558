import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { upgradeResponse } from '../../src/protocol/upgrade';
import { connect, echoServer, freePort, howItEnds, roundTrip, sha256, sleep, tcpServer } from '../helpers/net';
import { engines, runCli, startTunnel } from '../helpers/procs';

// The native engine accepts a plain tunnel's connections itself, on sessions
// and blocks of stream ids the client's JavaScript grants (engine-accept.ts);
// the js engine accepts in JavaScript. Both must carry the same.
for (const engine of engines()) {
  t.test(`[${engine}] 180 connections at once cross several grants, spread over both sessions, every byte intact`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['-c', '2', '--log-level', 'debug'] });
    t.teardown(async () => { await tun.stop(); await echo.close(); });
    const data = Array.from({ length: 180 }, (_, i) => randomBytes(1000 + i * 97));
    const back = await Promise.all(data.map((d) => roundTrip(tun.port, d)));
    t.equal(back.filter((b, i) => sha256(b) === sha256(data[i]!)).length, 180, 'all 180 echoed intact');
    const opens = [...tun.client.logs().matchAll(/session#(\d+) stream#(\d+) open from 127\.0\.0\.1:\d+ → /g)];
    // (Fewer than STREAM_LINES per session: every one gets its open line.)
    t.equal(opens.length, 180, 'an open line for every connection');
    if (engine === 'native') t.match(tun.client.logs(), /the engine accepts its connections/, 'the engine accepted them itself');
    else t.notMatch(tun.client.logs(), /the engine accepts its connections/, 'JavaScript accepted them');
    const per = new Map<string, Set<string>>();
    for (const m of opens) (per.get(m[1]!) ?? per.set(m[1]!, new Set()).get(m[1]!)!).add(m[2]!);
    t.equal(per.size, 2, `both sessions carried streams (${[...per].map(([s, ids]) => `session#${s}: ${ids.size}`).join(', ')})`);
    t.equal([...per.values()].reduce((n, ids) => n + ids.size, 0), 180, 'no stream id twice within a session');
    for (const ids of per.values()) t.ok([...ids].every((id) => Number(id) % 2 === 1), 'client ids are odd');
  });

  t.test(`[${engine}] a flood of connections writes a bounded number of open lines, and says how many it held back`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['-c', '1'] });
    t.teardown(async () => { await tun.stop(); await echo.close(); });
    const n = 500;
    for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: 100 }, () => roundTrip(tun.port, Buffer.from('x'))));
    await tun.client.stop('SIGTERM');
    const logs = tun.client.logs();
    const opens = [...logs.matchAll(/stream#\d+ open from /g)].length;
    const held = /session#\d+ … (\d+) more streams opened in the last/.exec(logs);
    t.ok(opens <= 200, `${opens} open lines for ${n} connections over one session`);
    t.ok(held, 'the lines held back are summed up when the session ends');
    t.equal(opens + Number(held?.[1] ?? 0), n, 'every connection is in a line or in the sum');
  });

  t.test(`[${engine}] connections made before any session is up wait for one, then are carried`, async (t) => {
    const echo = await echoServer();
    // A port with nothing on it yet; the server comes up there later.
    const port = await freePort();
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${port}/`, '-r', echo.addr, '--engine', engine,
      '-c', '1', '-t', '8000', '--retry-timeout', '100']);
    let server: Awaited<ReturnType<typeof runCli>> | undefined;
    t.teardown(async () => { await client.stop('SIGKILL'); await server?.stop('SIGKILL'); await echo.close(); });
    const data = Array.from({ length: 5 }, () => randomBytes(50_000));
    const early = data.map((d) => roundTrip(client.port, d, 20_000));
    await client.waitLog(/cannot reach|connect|ECONNREFUSED/i);
    server = await runCli(['server', '-l', `127.0.0.1:${port}`, '--engine', engine]);
    const back = await Promise.all(early);
    t.same(back.map(sha256), data.map(sha256), 'all five carried once the session came up');
    t.notMatch(client.logs(), /no session to the server within/, 'none gave up');
  });
}

/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;  // utime, stime (fields 14, 15) in clock ticks
}

for (const engine of engines()) {
  t.test(`[${engine}] a connection while the session is closing (our close frame unanswered) waits without spinning`, async (t) => {
    // A server that upgrades, then breaks the protocol and never answers the
    // client's close frame: the client's session is closing for its grace
    // period, yet not closed (JavaScript still counts it live).
    let closeSeen: () => void = () => undefined;
    const sawClose = new Promise<void>((r) => { closeSeen = r; });
    const conns: Socket[] = [];
    const fake = await tcpServer((s) => {
      conns.push(s);
      let buf = Buffer.alloc(0);
      let upgraded = false;
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (!upgraded) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const key = /sec-websocket-key: *(\S+)/i.exec(buf.subarray(0, end).toString())![1]!;
          upgraded = true;
          buf = buf.subarray(end + 4);
          s.write(upgradeResponse(key));
          return;
        }
        if (buf.includes(0x88)) {  // the client's close frame (FIN + close): from here on, read nothing
          s.pause();
          closeSeen();
        }
      });
      s.on('error', () => undefined);
    });
    const echo = await echoServer();
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${fake.port}/`, '-r', echo.addr, '--engine', engine, '-c', '1']);
    const local: Socket[] = [];
    t.teardown(async () => { for (const s of local) s.destroy(); await client.stop('SIGKILL'); for (const s of conns) s.destroy(); await fake.close(); await echo.close(); });
    await client.waitLog(/up → /);
    conns[0]!.write(Buffer.from([0xc2, 0x00]));  // RSV1 set: a protocol error, the client closes with 1002
    await sawClose;
    const before = cpuSeconds(client.proc.pid!);
    const started = Date.now();
    local.push(connect(client.port, '127.0.0.1'));
    local[0]!.on('error', () => undefined);
    await sleep(1000);  // within the session's 2 s close grace: what the client burns meanwhile
    const used = (cpuSeconds(client.proc.pid!) - before) / ((Date.now() - started) / 1000);
    t.ok(used < 0.3, `the client used ${used.toFixed(2)} of a core while the connection waited`);
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] with no session, connections beyond the 1024 the engine holds also time out, none hangs`, async (t) => {
    // A server port with nothing on it: no session ever comes up.
    const port = await freePort();
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${port}/`, '-r', '127.0.0.1:9', '--engine', engine,
      '-c', '1', '-t', '1000', '--retry-timeout', '100']);
    const local: Socket[] = [];
    t.teardown(async () => { for (const s of local) s.destroy(); await client.stop('SIGKILL'); });
    // 1100 connections: 1024 wait in the engine, the rest in the kernel's backlog (Node listens with 511).
    const ended = await Promise.all(Array.from({ length: 1100 }, () => new Promise<boolean>((resolve) => {
      const s = connect(client.port, '127.0.0.1');
      local.push(s);
      const timer = setTimeout(() => resolve(false), 15_000);
      s.on('error', () => undefined);
      s.on('close', () => { clearTimeout(timer); resolve(true); });
      s.resume();
    })));
    t.equal(ended.filter((e) => e).length, 1100, 'every connection was closed within 15 s (the timeout is 1 s)');
    // Anyone who reaches the port provokes these: rate-limited, then counted.
    const summary = await client.waitLog(/… \d+ more connections closed with no session up in the last [\d.]+ s \(lines held back\)/, 15_000);
    t.ok(Number(/… (\d+) more/.exec(summary)![1]) > 1000, 'the rest are summed up');
    t.ok((client.logs().match(/no session to the server within|already wait for a session/g) ?? []).length <= 40, 'at most 20 lines in each 10 s');
    // The js path holds as many as the engine does, and turns the rest away.
    if (engine === 'js') t.match(client.logs(), /connection from 127\.0\.0\.1:\d+ closed: 1024 connections of its listener already wait for a session/);
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] a connection that waits out --timeout with no session is closed (FIN) and said, as the JS path always did`, async (t) => {
    const port = await freePort();
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${port}/`, '-r', '127.0.0.1:9', '--engine', engine,
      '-c', '1', '-t', '500', '--retry-timeout', '100']);
    t.teardown(() => client.stop('SIGKILL'));
    const s = connect(client.port, '127.0.0.1');
    t.equal((await howItEnds(s)).how, 'end', 'the local client sees an orderly close');
    await client.waitLog(/no session to the server within 500 ms; closing connection from 127\.0\.0\.1:\d+/);
  });
}
