import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { connect, echoServer } from '../helpers/net';
import { engines, Proc, runCli, startTunnel } from '../helpers/procs';
import { rawWs } from '../helpers/raw-ws';

/** Sizes of the streams each test opens: each echoed whole before the session ends, so both sides know its bytes. */
const SIZES = [1000, 20_000, 300_000];

/** Opens one stream per size through the client's port and waits until each has its bytes echoed back; the sockets stay open. */
async function openEchoed(port: number): Promise<Socket[]> {
  return Promise.all(SIZES.map((size) => new Promise<Socket>((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = 0;
    s.on('error', () => undefined);
    s.on('close', () => reject(new Error(`stream of ${size} bytes closed after ${got} echoed`)));
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (got === size) resolve(s);
    });
    s.write(randomBytes(size));
  })));
}

interface Closed { how: string; bytesIn: number; bytesOut: number }

/** Every `session#S stream#N` a process logged as opened, and its close lines. */
function streamLines(logs: string): { opened: string[]; closed: Map<string, Closed[]> } {
  const opened = [...logs.matchAll(/(session#\d+ stream#\d+) (?:udp )?open\b/g)].map((m) => m[1]!);
  const closed = new Map<string, Closed[]>();
  for (const m of logs.matchAll(/(session#\d+ stream#\d+) closed \((.*?)\) → \S+ in=(\d+) out=(\d+)/g)) {
    const list = closed.get(m[1]!) ?? [];
    list.push({ how: m[2]!, bytesIn: Number(m[3]), bytesOut: Number(m[4]) });
    closed.set(m[1]!, list);
  }
  return { opened, closed };
}

/** Waits for `n` matches of `re` (a source string) in the process's logs. */
function waitCount(p: Proc, re: string, n: number, timeoutMs = 10_000): Promise<string> {
  return p.waitLog(new RegExp(`(?:[\\s\\S]*?${re}){${n}}`), timeoutMs);
}

/**
 * Each stream `p` logged as opened has exactly one close line, ending as
 * `how`, with every byte it carried each way (the echoed SIZES).
 */
function checkClosedLines(t: Test, p: Proc, how: string): void {
  const { opened, closed } = streamLines(p.logs());
  t.equal(opened.length, SIZES.length, `${SIZES.length} streams were opened`);
  const bytes: number[] = [];
  for (const id of opened) {
    const lines = closed.get(id) ?? [];
    t.equal(lines.length, 1, `${id}: exactly one close line`);
    const line = lines[0];
    if (!line) continue;
    t.equal(line.how, how, `${id}: closed (${how})`);
    t.equal(line.bytesIn, line.bytesOut, `${id}: as many bytes in as out (an echo)`);
    bytes.push(line.bytesIn);
  }
  t.same(bytes.sort((a, b) => a - b), SIZES, 'with each stream\'s bytes');
}

for (const engine of engines()) {
  for (const victim of ['client', 'server'] as const) {
    const survivor = victim === 'client' ? 'server' : 'client';
    t.test(`[${engine}] the ${victim} killed with kill -9: the ${survivor} logs each open stream closed once, as session lost, with its bytes`, async (t) => {
      const echo = await echoServer();
      const tun = await startTunnel({ engine, target: echo.addr });
      const sockets = await openEchoed(tun.port);
      t.teardown(async () => { for (const s of sockets) s.destroy(); await tun.stop(); await echo.close(); });
      const alive = tun[survivor];
      await waitCount(alive, 'stream#\\d+ open', SIZES.length);
      await tun[victim].stop('SIGKILL');
      // Both sessions go down; a stream's close line comes before its session's down line.
      await waitCount(alive, 'down \\(', 2);
      checkClosedLines(t, alive, 'session lost');
    });
  }

  for (const drainer of ['client', 'server'] as const) {
    const peer = drainer === 'client' ? 'server' as const : 'client' as const;
    t.test(`[${engine}] the ${drainer}'s --drain-timeout cuts open streams: each is logged closed once on both sides, and the down lines say how many were cut`, async (t) => {
      const echo = await echoServer();
      const drain = ['--drain-timeout', '1000'];
      const tun = await startTunnel({ engine, target: echo.addr, [`${drainer}Args`]: drain });
      const sockets = await openEchoed(tun.port);
      t.teardown(async () => { for (const s of sockets) s.destroy(); await tun.stop(); await echo.close(); });
      await waitCount(tun.server, 'stream#\\d+ open', SIZES.length);
      t.equal(await tun[drainer].stop('SIGTERM'), 0, `the ${drainer} exits 0`);
      await waitCount(tun[peer], 'down \\(', 2);
      checkClosedLines(t, tun[drainer], 'drain timeout');
      checkClosedLines(t, tun[peer], 'peer closed the session');
      for (const who of [drainer, peer] as const) {
        const logs = tun[who].logs();
        const carrying = new Set(streamLines(logs).opened.map((id) => id.split(' ')[0]));
        const cut = [...logs.matchAll(/down \(1001 \w+ shutting down; drain timeout cut (\d+) streams?\)/g)].map((m) => Number(m[1]));
        t.equal(cut.length, carrying.size, `${who}: the down line of each session that carried streams says streams were cut`);
        t.equal(cut.reduce((a, b) => a + b, 0), SIZES.length, `${who}: and how many (${cut.join(' + ')})`);
      }
    });
  }
}

for (const engine of engines()) {
  t.test(`[${engine}] sessions churned as fast as handshakes go: the server writes a bounded number of up/down lines and sums up the rest`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(() => server.stop('SIGKILL'));
    const n = 300;
    let upgraded = 0;
    for (let i = 0; i < n; i += 20) {
      await Promise.all(Array.from({ length: 20 }, async () => {
        const ws = await rawWs(server.port);
        await ws.until((got) => got.includes('\r\n\r\n'));
        if (/^HTTP\/1\.1 101 /.test(ws.received().toString('latin1'))) upgraded++;
        ws.close();
        await ws.ended;
      }));
    }
    t.equal(upgraded, n, `all ${n} sessions came up`);
    t.equal(await server.stop('SIGTERM'), 0, 'the server exits 0');
    const logs = server.logs();
    const lines = [...logs.matchAll(/session#\d+ (?:up from|down \()/g)].length;
    const held = [...logs.matchAll(/… (\d+) more session up\/down lines in the last/g)].reduce((a, m) => a + Number(m[1]), 0);
    t.ok(lines <= 200, `${lines} up/down lines for ${n} sessions`);
    t.ok(held > 0, 'the lines held back are summed up, at the latest when the server stops');
    t.equal(lines + held, 2 * n, 'each session\'s up and down is in a line or in a sum');
  });
}
