import t from 'tap';
import { connect } from 'node:net';
import { echoServer, howItEnds } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';

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
