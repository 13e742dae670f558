import t from 'tap';
import { randomBytes } from 'node:crypto';
import { AddressInfo, createServer } from 'node:net';
import { echoServer, roundTrip, sha256 } from '../helpers/net';
import { engines, startTunnel } from '../helpers/procs';

for (const engine of engines()) {
  t.test(`[${engine}] many concurrent streams of random sizes arrive intact both ways`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr });
    t.teardown(async () => { await tun.stop(); await echo.close(); });
    const sizes = [0, 1, 5, 65535, 65536, 65537, 262144, 262149, 1_000_003, 4 * 1024 * 1024 + 7];
    for (let i = 0; i < 30; i++) sizes.push(Math.floor(Math.random() * 2_000_000));
    const results = await Promise.all(sizes.map(async (n) => {
      const data = randomBytes(n);
      const back = await roundTrip(tun.port, data, 60_000);
      return { n, ok: back.length === n && sha256(back) === sha256(data) };
    }));
    const bad = results.filter((r) => !r.ok);
    t.same(bad, [], `${results.length} streams, every byte back in order`);
    // Streams were spread over both sessions of the default -c 2.
    t.match(tun.client.logs(), /session#1 stream#\d+ open/);
    t.match(tun.client.logs(), /session#2 stream#\d+ open/);
  });

  t.test(`[${engine}] an IPv6 target ([::1]:port) carries data intact`, async (t) => {
    const echo = createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
    await new Promise<void>((resolve) => echo.listen(0, '::1', resolve));
    const port = (echo.address() as AddressInfo).port;
    const tun = await startTunnel({ engine, target: `[::1]:${port}`, serverArgs: ['-v'] });
    t.teardown(async () => { await tun.stop(); await new Promise((r) => echo.close(r)); });
    const data = randomBytes(1_000_000);
    t.equal(sha256(await roundTrip(tun.port, data)), sha256(data), '1 MB echoed intact');
    t.match(tun.server.logs(), new RegExp(`connecting \\[::1\\]:${port}`), 'the server connected to ::1');
  });

  t.test(`[${engine}] a 64 MiB transfer keeps its sha256`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['-c', '1'] });
    t.teardown(async () => { await tun.stop(); await echo.close(); });
    const data = randomBytes(64 * 1024 * 1024);
    const back = await roundTrip(tun.port, data, 90_000);
    t.equal(back.length, data.length);
    t.equal(sha256(back), sha256(data));
    // the close line carries the byte counts each way
    await tun.server.waitLog(/closed \(fin\).*in=67108864 out=67108864/);
  });
}
