import t from 'tap';
import { randomBytes } from 'node:crypto';
import { echoServer, roundTrip, sha256 } from '../helpers/net';
import { ioThreads, startTunnel } from '../helpers/procs';

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
