import t from 'tap';
import { connect } from 'node:net';
import { echoServer, howItEnds, tcpServer } from '../helpers/net';
import { engines, runCli, startTunnel } from '../helpers/procs';

/** What the log lines say: the same words on both engines, addresses printed one way. */
for (const engine of engines()) {
  t.test(`[${engine}] IPv6 peers are printed [addr]:port on both ends`, async (t) => {
    const echo = await echoServer();
    const server = await runCli(['server', '-l', '[::1]:0', '--engine', engine]);
    const client = await runCli(['client', '-l', '[::1]:0', '-s', `ws://[::1]:${server.port}/`, '-r', echo.addr, '--engine', engine, '-c', '1']);
    t.teardown(async () => { await client.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close(); });
    await client.waitLog(/up → /);
    const s = connect({ port: client.port, host: '::1' });
    s.end('x');
    await howItEnds(s);
    t.match(await server.waitLog(/session#1 up from .*/), /up from \[::1\]:\d+$/);
    t.match(await client.waitLog(/stream#1 open from .*/), /open from \[::1\]:\d+ → /);
    t.notMatch(server.logs() + client.logs(), /[^[]::1:\d/, 'no bare ::1:port anywhere');
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] a peer killed with kill -9 is "down (1006 connection lost)" on either end`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['-c', '1'] });
    t.teardown(async () => { await tun.stop(); await echo.close(); });
    await tun.client.stop('SIGKILL');
    t.match(await tun.server.waitLog(/session#1 down .*/), /^session#1 down \(1006 connection lost\) after /);
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${tun.server.port}/`, '-r', echo.addr, '--engine', engine, '-c', '1']);
    t.teardown(() => client.stop('SIGKILL'));
    await client.waitLog(/up → /);
    await tun.server.stop('SIGKILL');
    t.match(await client.waitLog(/session#1 down .*/), /^session#1 down \(1006 connection lost\) after /);
  });

  t.test(`[${engine}] a silent peer is "down (1006 connection lost: peer silent for N ms)"`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['-c', '1'], serverArgs: ['-t', '1000'] });
    t.teardown(async () => { tun.client.proc.kill('SIGCONT'); await tun.stop(); await echo.close(); });
    tun.client.proc.kill('SIGSTOP');
    t.match(await tun.server.waitLog(/session#1 down .*/), /^session#1 down \(1006 connection lost: peer silent for \d+ ms\) after /);
  });

  t.test(`[${engine}] a local socket that fails says how: "local error: ECONNRESET"`, async (t) => {
    // The target resets the connection once the stream is up and carrying data.
    const target = await tcpServer((s) => s.once('data', () => s.resetAndDestroy()));
    const tun = await startTunnel({ engine, target: target.addr, clientArgs: ['-c', '1'] });
    t.teardown(async () => { await tun.stop(); await target.close(); });
    const s = connect({ port: tun.port, host: '127.0.0.1' });
    s.write('hello');
    await howItEnds(s);
    t.match(await tun.server.waitLog(/stream#1 closed .*/), /^stream#1 closed \(local error: ECONNRESET\) → /);
  });
}
