import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { echoServer, roundTrip, sha256 } from '../helpers/net';
import { startTunnel } from '../helpers/procs';

/** How many of the process's threads are native I/O threads. */
function ioThreads(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).filter((tid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() === 'tws-io';
    } catch {
      return false;
    }
  }).length;
}

t.test('--threads spreads native sessions over that many I/O threads, data intact', async (t) => {
  const echo = await echoServer();
  const tun = await startTunnel({ engine: 'native', target: echo.addr, serverArgs: ['--threads', '2'], clientArgs: ['-c', '4', '--threads', '2'] });
  t.teardown(async () => { await tun.stop(); await echo.close(); });
  t.equal(ioThreads(tun.client.proc.pid!), 2, 'client: 2 I/O threads');
  t.equal(ioThreads(tun.server.proc.pid!), 2, 'server: 2 I/O threads');
  const datas = Array.from({ length: 12 }, (_, i) => randomBytes(200_000 + i * 50_000));
  const backs = await Promise.all(datas.map((d) => roundTrip(tun.port, d)));
  t.same(backs.map((b) => sha256(b)), datas.map((d) => sha256(d)), '12 concurrent streams intact');
});

t.test('the native engine runs one I/O thread by default', async (t) => {
  const echo = await echoServer();
  const tun = await startTunnel({ engine: 'native', target: echo.addr });
  t.teardown(async () => { await tun.stop(); await echo.close(); });
  t.equal(ioThreads(tun.client.proc.pid!), 1);
  t.equal(ioThreads(tun.server.proc.pid!), 1);
});
