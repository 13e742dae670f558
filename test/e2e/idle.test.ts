import t from 'tap';
import { randomBytes } from 'node:crypto';
import { connect, Socket } from 'node:net';
import { echoServer, roundTrip, sleep, tcpServer } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';
import { parseFrames } from '../helpers/raw-ws';

const PING = 0x9;
/** The session timeout of both sides (the default): liveness pings come after half of it. */
const TIMEOUT_MS = 5000;
/** RTT probes a side sends each time DATA stops (QUIET_PROBES, Liveness::kQuietProbes). */
const QUIET_PROBES = 3;

/** The times (ms) pings went each way over one WebSocket connection. */
interface Pings {
  up: number[];
  down: number[];
}

/** Collects the ping times of one direction: frames start after the HTTP head. */
function pingCounter(times: number[]): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  let inHead = true;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (inHead) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      inHead = false;
      buf = buf.subarray(end + 4);
    }
    const { frames, rest } = parseFrames(buf);
    for (const f of frames) if (f.opcode === PING) times.push(Date.now());
    buf = Buffer.from(rest);
  };
}

/** A relay in front of the server that passes every byte on and notes each ping, per connection and direction. */
async function pingTap(serverPort: number): Promise<{ port: number; conns: Pings[]; close(): Promise<void> }> {
  const ups = new Set<Socket>();
  const conns: Pings[] = [];
  const relay = await tcpServer((down) => {
    const up = connect({ port: serverPort, host: '127.0.0.1' });
    ups.add(up);
    const pings: Pings = { up: [], down: [] };
    conns.push(pings);
    const countUp = pingCounter(pings.up);
    const countDown = pingCounter(pings.down);
    up.on('error', () => down.destroy());
    up.on('close', () => { ups.delete(up); down.destroy(); });
    down.on('close', () => up.destroy());
    down.on('data', (c: Buffer) => { countUp(c); up.write(c); });
    up.on('data', (c: Buffer) => { countDown(c); down.write(c); });
  });
  return { port: relay.port, conns, close: async () => { for (const s of ups) s.destroy(); await relay.close(); } };
}

/** Resolves once `pred` holds, polled; rejects with `what` after `ms`. */
async function until(pred: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    await sleep(20);
  }
}

const since = (times: number[], from: number): number => times.filter((x) => x >= from).length;

for (const engine of engines()) {
  t.test(`[${engine}] an idle session pings only at the liveness rate, and probes the RTT again after DATA`, async (t) => {
    const echo = await echoServer();
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    const tap = await pingTap(server.port);
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${tap.port}/`, '-r', echo.addr,
      '--engine', engine, '-c', '2']);
    t.teardown(async () => { await client.stop('SIGKILL'); await server.stop('SIGKILL'); await tap.close(); await echo.close(); });
    await client.waitLog(/up → [\s\S]*up → /);
    const from = Date.now();
    const windowMs = 10_000;
    await sleep(windowMs);  // the measurement: what an idle tunnel sends in 10 s
    t.equal(tap.conns.length, 2, 'the two sessions stayed up: no reconnect');
    // Each way: the start-up probes, then at most one ping per half timeout (the peer's pings count as heard).
    const most = QUIET_PROBES + Math.ceil(windowMs / (TIMEOUT_MS / 2));
    tap.conns.forEach((c, i) => {
      const up = since(c.up, from);
      const down = since(c.down, from);
      t.ok(up <= most && down <= most, `session ${i}: ${up} pings client → server, ${down} server → client in 10 s (at most ${most} each way)`);
      t.ok(up + down >= windowMs / TIMEOUT_MS, `session ${i}: liveness still pings (${up + down})`);
    });
    // DATA moves: once it stops, each side takes its few RTT samples again.
    await roundTrip(client.port, randomBytes(100_000));
    const after = Date.now();
    await until(() => tap.conns.some((c) => since(c.up, after) >= QUIET_PROBES && since(c.down, after) >= QUIET_PROBES), 3000,
      () => `pings since the DATA: ${tap.conns.map((c) => `${since(c.up, after)}/${since(c.down, after)}`).join(', ')}`);
    t.pass('after DATA both sides of its session probed the RTT again');
  });
}
