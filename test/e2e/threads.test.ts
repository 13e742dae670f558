import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { echoServer, roundTrip, sha256 } from '../helpers/net';
import { ioThreads, runCli, startTunnel } from '../helpers/procs';

/**
 * The I/O thread count once it has reached `want` (threads start with the first
 * session they are given, which can come after the "listening" line), or the
 * last count seen when 5 s pass without reaching it.
 */
async function settledIoThreads(pid: number, want: number): Promise<number> {
  const deadline = Date.now() + 5000;
  let n = ioThreads(pid);
  while (n !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    n = ioThreads(pid);
  }
  return n;
}

t.test('--threads spreads native sessions over that many I/O threads, data intact', async (t) => {
  const echo = await echoServer();
  const tun = await startTunnel({ engine: 'native', target: echo.addr, serverArgs: ['--threads', '2'], clientArgs: ['-c', '4', '--threads', '2'] });
  t.teardown(async () => { await tun.stop(); await echo.close(); });
  t.equal(await settledIoThreads(tun.client.proc.pid!, 2), 2, 'client: 2 I/O threads');
  t.equal(await settledIoThreads(tun.server.proc.pid!, 2), 2, 'server: 2 I/O threads');
  const datas = Array.from({ length: 12 }, (_, i) => randomBytes(200_000 + i * 50_000));
  const backs = await Promise.all(datas.map((d) => roundTrip(tun.port, d)));
  t.same(backs.map((b) => sha256(b)), datas.map((d) => sha256(d)), '12 concurrent streams intact');
});

t.test('addon ids come round to 1 (never 0) and skip those still in use: sessions that come and go never take a live one', async (t) => {
  const echo = await echoServer();
  // Ids 1 to 6 only: the long-lived client's two sessions hold two of them while eight more clients come and go.
  const env = { TWS_TEST_ADDON_ID_CEILING: '6' };
  const tun = await startTunnel({ engine: 'native', target: echo.addr, clientArgs: ['-c', '2'], env });
  t.teardown(async () => { await tun.stop(); await echo.close(); });
  const url = `ws://127.0.0.1:${tun.server.port}/`;
  for (let i = 0; i < 8; i++) {
    const other = await runCli(['client', '-l', '127.0.0.1:0', '-s', url, '-r', echo.addr, '--engine', 'native', '-c', '1'], env);
    const data = randomBytes(50_000);
    const back = await roundTrip(other.port, data).finally(() => other.stop());
    t.equal(sha256(back), sha256(data), `client ${i + 1} of 8: data intact`, { diagnostic: false });
    t.notMatch(other.logs(), /cannot connect|cannot reach|failed attempts?/, 'its first connection came up', { diagnostic: false });
  }
  const data = randomBytes(200_000);
  t.equal(sha256(await roundTrip(tun.port, data)), sha256(data), 'the long-lived client still carries data');
  t.equal(tun.client.logs().match(/ session#\d+ up → /g)?.length, 2, 'over the two sessions it started with');
});

t.test('the native engine runs one I/O thread by default', async (t) => {
  const echo = await echoServer();
  const tun = await startTunnel({ engine: 'native', target: echo.addr });
  t.teardown(async () => { await tun.stop(); await echo.close(); });
  t.equal(await settledIoThreads(tun.client.proc.pid!, 1), 1);
  t.equal(await settledIoThreads(tun.server.proc.pid!, 1), 1);
  // With -c 2 both sessions share that thread: no second one appears later.
  await roundTrip(tun.port, randomBytes(1000));
  t.equal(ioThreads(tun.client.proc.pid!), 1, 'still one after traffic');
});

/** CPU time (ms) the process's native I/O threads have used so far. */
function ioCpuMs(pid: number): number {
  let ticks = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() !== 'tws-io') continue;
      // utime and stime are fields 14 and 15; the name (field 2) has no spaces here.
      const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(' ');
      ticks += Number(f[13]) + Number(f[14]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

t.test('--busy-poll keeps the I/O thread polling after traffic; without it the thread sleeps', async (t) => {
  const echo = await echoServer();
  const spin = await startTunnel({ engine: 'native', target: echo.addr, clientArgs: ['-c', '1', '--busy-poll', '100000'] });
  const idle = await startTunnel({ engine: 'native', target: echo.addr, clientArgs: ['-c', '1'] });
  t.teardown(async () => { await spin.stop(); await idle.stop(); await echo.close(); });
  const before = [ioCpuMs(spin.client.proc.pid!), ioCpuMs(idle.client.proc.pid!)];
  // Small round trips for 1.5 s: each one, and each liveness ping, starts a 100 ms polling window.
  const until = Date.now() + 1500;
  while (Date.now() < until) {
    const data = randomBytes(100);
    t.equal(sha256(await roundTrip(spin.port, data)), sha256(data));
    t.equal(sha256(await roundTrip(idle.port, data)), sha256(data));
    await new Promise((r) => setTimeout(r, 50));
  }
  const spent = [ioCpuMs(spin.client.proc.pid!) - before[0]!, ioCpuMs(idle.client.proc.pid!) - before[1]!];
  // At least a tenth of a core: a polling thread takes all it gets, but on two cores shared with the
  // suite's other test file (and the sanitizer build) that can be little; the idle one takes far less.
  t.ok(spent[0]! >= 150, `with --busy-poll the I/O thread kept polling (${spent[0]} ms of CPU in 1.5 s)`);
  t.ok(spent[1]! < spent[0]! / 3, `without, it mostly slept (${spent[1]} ms)`);
});
