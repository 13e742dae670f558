import t from 'tap';
import { randomBytes } from 'node:crypto';
import { echoServer, freePort, roundTrip, sha256 } from '../helpers/net';
import { engines, runCli, startTunnel } from '../helpers/procs';

for (const engine of engines()) {
  t.test(`[${engine}] a server that cannot be reached is said at info at growing intervals, and its return once`, async (t) => {
    const echo = await echoServer();
    const port = await freePort();
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${port}/`, '-r', echo.addr, '--engine', engine,
      '-c', '1', '-e', '10']);
    let server: Awaited<ReturnType<typeof runCli>> | undefined;
    t.teardown(async () => { await client.stop('SIGKILL'); await server?.stop('SIGKILL'); await echo.close(); });
    const url = `ws://127\\.0\\.0\\.1:${port}/`;
    t.match(await client.waitLog(/ WARN .*slot 1: cannot connect to .*/), new RegExp(`slot 1: cannot connect to ${url}: ECONNREFUSED; retrying in \\d+ ms`));
    for (const n of [2, 4, 8]) {
      const line = await client.waitLog(new RegExp(` INFO  slot 1: still cannot reach .*attempt ${n},.*`));
      t.match(line, new RegExp(`still cannot reach ${url}: ECONNREFUSED; attempt ${n}, next in \\d+\\.\\d s$`));
    }
    t.notMatch(client.logs(), /attempt [3567],/, 'the attempts between are not at info');
    server = await runCli(['server', '-l', `127.0.0.1:${port}`, '--engine', engine]);
    const up = await client.waitLog(/session#1 up → .*/, 20_000);
    t.match(up, /\(slot 1; reachable again after \d+ failed attempts in \d+\.\d s\)$/);
  });

  t.test(`[${engine}] the client recovers after the server restarts`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['-e', '100'] });
    let server2: Awaited<ReturnType<typeof runCli>> | undefined;
    t.teardown(async () => { await tun.stop(); await server2?.stop('SIGKILL'); await echo.close(); });
    const data = randomBytes(300_000);
    t.equal(sha256(await roundTrip(tun.port, data)), sha256(data), 'works before');
    await tun.server.stop('SIGKILL');
    await tun.client.waitLog(/down \(/);
    const downAt = Date.now();
    server2 = await runCli(['server', '-l', `127.0.0.1:${tun.server.port}`, '--engine', engine]);
    await server2.waitLog(/(?:[\s\S]*?up from ){2}/, 20_000);
    t.ok(Date.now() - downAt < 15_000, 'both sessions came back within seconds');
    t.equal(sha256(await roundTrip(tun.port, data)), sha256(data), 'works after');
  });

  t.test(`[${engine}] a silent server is declared dead within timeout and the client reconnects`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['-t', '1000', '-e', '100', '-c', '1'], serverArgs: ['-t', '1000'] });
    t.teardown(async () => { tun.server.proc.kill('SIGCONT'); await tun.stop(); await echo.close(); });
    const stoppedAt = Date.now();
    tun.server.proc.kill('SIGSTOP');
    await tun.client.waitLog(/peer silent for \d+ ms \(timeout 1000 ms\); closing session/, 5000);
    const detected = Date.now() - stoppedAt;
    t.ok(detected < 2500, `detected after ${detected} ms`);
    tun.server.proc.kill('SIGCONT');
    await tun.client.waitLog(/(?:[\s\S]*?up → ){2}/, 15_000);
    const data = randomBytes(100_000);
    t.equal(sha256(await roundTrip(tun.port, data)), sha256(data), 'data flows on the new session');
  });
}
