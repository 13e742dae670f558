/**
 * The proxy listeners under abuse (issue 15's review): udp streams end with
 * their association rather than after --udp-timeout; password guessing is
 * slowed and locked out per address; connections still negotiating are
 * bounded per listener and per address; early data after a SOCKS request is
 * the stream's, whatever its size.
 */
import t from 'tap';
import type { Test } from 'tap';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { echoServer, sha256 } from '../helpers/net';
import { engines, Proc, runCli } from '../helpers/procs';
import { readBytes, socksAddress, socksRequest } from '../helpers/socks';
import { waitFor } from '../helpers/wait';

async function start(t: Test, engine: string, serverArgs: string[] = [], clientArgs: string[] = [], prefix: string[] = []):
  Promise<{ server: Proc; client: Proc }> {
  const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, ...serverArgs]);
  t.teardown(() => server.stop('SIGKILL'));
  const client = await runCli(['client', '-s', `ws://127.0.0.1:${server.port}/`, '--engine', engine, '-c', '1', '-D', '0', ...clientArgs],
    {}, undefined, prefix);
  t.teardown(() => client.stop('SIGKILL'));
  await client.waitLog(/listening on 127\.0\.0\.1:\d+ → SOCKS5 \(socks\)/);
  await client.waitLog(/up → /);
  return { server, client };
}

/** A connection to the client's `port` from loopback address `from` (127.0.0.x: each is another source). */
function connectFrom(port: number, from: string, t: Test): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress: from });
    t.teardown(() => s.destroy());
    s.once('connect', () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

const fds = (p: Proc): number => readdirSync(`/proc/${p.proc.pid!}/fd`).length;

for (const engine of engines()) {
  t.test(`[${engine}] udp streams end with their association: the server's fds come back at once, not after --udp-timeout`, async (t) => {
    const { server, client } = await start(t, engine, ['--udp-timeout', '300000'], ['--udp-timeout', '300000']);
    const DESTS = 24;
    const baseline = fds(server);
    const u = createSocket('udp4');
    t.teardown(() => u.close());
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
    for (let round = 0; round < 3; round++) {
      const assoc = await socksRequest(client.port, 3, '127.0.0.1', 0);
      t.equal(assoc.reply, 0, `association ${round} answered`);
      // One datagram to each of DESTS destinations (nothing needs to listen there): one udp stream, one server socket each.
      for (let i = 0; i < DESTS; i++) {
        u.send(Buffer.concat([Buffer.from([0, 0, 0]), socksAddress('127.0.0.1', 9 + i), Buffer.from('x')]), assoc.bound!.port, '127.0.0.1');
      }
      t.ok(await waitFor(() => fds(server) >= baseline + DESTS, 10_000), `round ${round}: the server opened a socket per destination (${fds(server)} fds, baseline ${baseline})`);
      assoc.socket.destroy();
      t.ok(await waitFor(() => fds(server) <= baseline + 2, 10_000), `round ${round}: and closed them with the association (${fds(server)} fds, baseline ${baseline})`);
    }
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] early data in the same write as the CONNECT request (2000 bytes, 64 KiB) reaches the target intact`, async (t) => {
    const target = await echoServer();
    t.teardown(() => target.close());
    const { client } = await start(t, engine);
    for (const size of [2000, 64 * 1024]) {
      const early = randomBytes(size);
      const s = await connectFrom(client.port, '127.0.0.1', t);
      s.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0]), socksAddress('127.0.0.1', target.port), early]));
      const r = await readBytes(s, 2 + 10 + size, 10_000);
      t.equal(r.data.length, 2 + 10 + size, `${size}: method, reply and the echo came back`);
      t.same([...r.data.subarray(0, 4)], [5, 0, 5, 0], `${size}: no-auth, then succeeded`);
      t.equal(sha256(r.data.subarray(12)), sha256(early), `${size}: the early data reached the target intact`);
      s.destroy();
    }
  });
}
