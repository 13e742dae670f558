import t from 'tap';
import { randomBytes } from 'node:crypto';
import { connect, Socket } from 'node:net';
import { roundTrip, tcpServer } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';
import { DEFAULT_SESSION_OPTIONS } from '../../src/engine/types';

/** A relay that holds every chunk for `delayMs` each way: a long path on loopback. */
async function delayRelay(targetPort: number, delayMs: number): Promise<{ port: number; close(): Promise<void> }> {
  const pairs = new Set<Socket>();
  const relay = await tcpServer((down) => {
    const up = connect({ port: targetPort, host: '127.0.0.1' });
    pairs.add(up);
    up.on('error', () => down.destroy());
    up.on('close', () => { pairs.delete(up); down.destroy(); });
    down.on('close', () => up.destroy());
    const pipeDelayed = (from: Socket, to: Socket): void => {
      from.on('data', (c: Buffer) => setTimeout(() => { if (!to.destroyed) to.write(c); }, delayMs));
    };
    pipeDelayed(down, up);
    pipeDelayed(up, down);
  });
  return { port: relay.port, close: async () => { for (const s of pairs) s.destroy(); await relay.close(); } };
}

for (const engine of engines()) {
  t.test(`[${engine}] across a 50 ms round trip the receive window grows from its initial ${DEFAULT_SESSION_OPTIONS.initialWindow >> 20} MiB to at least twice that`, async (t) => {
    const sink = await tcpServer((s) => { s.resume(); s.on('end', () => s.end('done')); });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '-v']);
    const relay = await delayRelay(server.port, 25);
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${relay.port}/`, '-r', sink.addr,
      '--engine', engine, '-c', '1', '-t', '5000']);
    t.teardown(async () => { await client.stop('SIGKILL'); await server.stop('SIGKILL'); await relay.close(); await sink.close(); });
    await client.waitLog(/up → /);
    // Let quiet RTT probes measure the path before the bulk transfer starts.
    await new Promise((r) => setTimeout(r, 1500));
    const data = randomBytes(24 * 1024 * 1024);
    const reply = await roundTrip(client.port, data, 90_000);
    t.equal(reply.toString(), 'done');
    const grown = [...server.logs().matchAll(/window → (\d+) .*base rtt ([\d.]+) ms/g)];
    t.ok(grown.length > 0, 'the server grew the stream window');
    const last = grown.at(-1)!;
    t.ok(Number(last[1]) >= 2 * DEFAULT_SESSION_OPTIONS.initialWindow, `window reached ${last[1]} bytes`);
    t.ok(Number(last[2]) >= 45, `from a base RTT of ${last[2]} ms, i.e. the path, not a queue`);
    t.match(server.logs(), /closed \(fin\) .* in=25165824/, 'every byte arrived');
  });
}
