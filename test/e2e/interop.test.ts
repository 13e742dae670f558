import t from 'tap';
import { randomBytes } from 'node:crypto';
import { connect, echoServer, freePort, howItEnds, roundTrip, sha256 } from '../helpers/net';
import { runCli } from '../helpers/procs';

for (const [serverEngine, clientEngine] of [['js', 'native'], ['native', 'js']]) {
  t.test(`a ${clientEngine} client and a ${serverEngine} server interoperate: integrity, half-close, refusal`, async (t) => {
    const echo = await echoServer();
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', serverEngine!]);
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', echo.addr,
      '--engine', clientEngine!]);
    t.teardown(async () => { await client.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close(); });
    t.match(server.logs(), new RegExp(`engine ${serverEngine}`));
    t.match(client.logs(), new RegExp(`engine ${clientEngine}`));
    const sizes = [1, 65536, 65537, 300_000, 3_000_001];
    const results = await Promise.all(sizes.map(async (n) => {
      const data = randomBytes(n);
      return sha256(await roundTrip(client.port, data)) === sha256(data);
    }));
    t.same(results, sizes.map(() => true), 'every stream intact both ways');

    // Refused target: the stream is reset, the local socket closed.
    const deadAddr = `127.0.0.1:${await freePort()}`;  // nothing listens there
    const refusing = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', deadAddr,
      '--engine', clientEngine!]);
    t.teardown(() => refusing.stop('SIGKILL'));
    const s = connect({ port: refusing.port, host: '127.0.0.1' });
    const { data } = await howItEnds(s);
    t.equal(data.length, 0, 'nothing from a refused target');
    await refusing.waitLog(/closed \(peer reset: connect failed/);
  });
}
