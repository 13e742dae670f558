/**
 * `npm run worst-case`: what hostile password holders can make a tws server
 * hold, measured (docs/security.md quotes it). Sessions open many TCP
 * streams to a target that accepts and never reads, fill every window the
 * server grants (early data included), and never read what the server sends
 * back; the server's RSS and open fds are sampled until it stops taking
 * bytes. Loopback only; everything started here is stopped at the end.
 *
 *   node dist/bench/worst-case.js [--engines native,js] [--sessions N] [--streams N] [--budget MIB]
 */
import { createHmac, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import { Command } from 'commander';
import { WebSocket } from 'ws';
import { start, stop } from './procs';

const PASSWD = 'worst-case-password';
const MIB = 1024 * 1024;

function authHeader(): string {
  const ts = String(Date.now());
  const nonce = randomBytes(16).toString('base64url');
  const mac = createHmac('sha256', PASSWD).update(`tws2-auth\n${ts}\n${nonce}\n`).digest('base64url');
  return `v1 ts=${ts} nonce=${nonce} mac=${mac}`;
}

function frame(type: number, stream: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeUInt32BE(stream, 1);
  return Buffer.concat([head, body]);
}

const open = (id: number, target: string): Buffer => {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(65536, 0);
  b[4] = 1;
  return frame(1, id, Buffer.concat([b, Buffer.from(target)]));
};

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}
const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** One attacking session: opens `streams` streams and fills every window it is granted. */
function attack(port: number, streams: number, target: string): Promise<{ ws: WebSocket; granted: () => number; refused: () => number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ['tws2'], { perMessageDeflate: false, headers: { 'Tws-Auth': authHeader() } });
    let granted = 0;
    let refused = 0;
    const chunk = randomBytes(256 * 1024);
    const send = (id: number, bytes: number): void => {
      for (let left = bytes; left > 0; left -= chunk.length) ws.send(frame(3, id, chunk.subarray(0, Math.min(left, chunk.length))));
    };
    ws.on('message', (m: Buffer) => {
      const id = m.readUInt32BE(1);
      if (m[0] === 2) {
        // OPEN_OK: the window counts from the stream's first byte, early data included.
        const window = m.readUInt32BE(5);
        granted += window;
        send(id, window - 65536);
      } else if (m[0] === 6) {
        refused++;
      }
    });
    ws.once('error', reject);
    ws.once('open', () => {
      for (let i = 0; i < streams; i++) {
        const id = 1 + 2 * i;
        ws.send(open(id, target));
        send(id, 65536);  // early data, before OPEN_OK
      }
      resolve({ ws, granted: () => granted, refused: () => refused });
    });
  });
}

async function measure(engine: string, sessions: number, streams: number, budget: number): Promise<void> {
  // The target accepts and never reads. Its receive buffers are made small
  // (SO_RCVBUF is inherited from the listener), so what it does not take is
  // held by tws, not by the kernel: python3 can set that, Node cannot.
  const python = spawnSync('python3', ['--version']).status === 0;
  const target = python
    ? await start('python3', ['-c', [
      'import socket, time',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)',
      's.bind(("127.0.0.1", 0)); s.listen(4096); print(s.getsockname()[1], flush=True)',
      'held = []',
      'while True: held.append(s.accept()[0])',
    ].join('\n')], /^(\d+)/m)
    : undefined;
  const held = new Set<Socket>();
  const nodeTarget: Server | undefined = python ? undefined : createServer((c) => { held.add(c); c.pause(); c.on('error', () => undefined); });
  if (nodeTarget) await new Promise<void>((r) => nodeTarget.listen(0, '127.0.0.1', () => r()));
  const targetAddr = `127.0.0.1:${target ? target.match[1] : (nodeTarget!.address() as { port: number }).port}`;
  const server = await start(process.execPath, [require.resolve('../cli/main.js'), 'server', '-l', '127.0.0.1:0', '--engine', engine,
    '--buffer-budget', String(budget)], /listening on \S+:(\d+)/, { TWS_PASSWD: PASSWD });
  const pid = server.proc.pid!;
  const port = Number(server.match[1]);
  const rss0 = rssMiB(pid);
  const fds0 = fds(pid);
  const peers = await Promise.all(Array.from({ length: sessions }, () => attack(port, streams, targetAddr)));
  let peak = rss0;
  let peakFds = fds0;
  let last = -1;
  let stable = 0;
  const started = Date.now();
  // Until the server stops taking bytes (our send buffers stay full) or 60 s pass.
  while (Date.now() - started < 60_000 && stable < 10) {
    await new Promise((r) => setTimeout(r, 200));
    peak = Math.max(peak, rssMiB(pid));
    peakFds = Math.max(peakFds, fds(pid));
    const buffered = peers.reduce((s, p) => s + p.ws.bufferedAmount, 0);
    stable = Math.abs(buffered - last) < 64 * 1024 ? stable + 1 : 0;
    last = buffered;
  }
  const granted = peers.reduce((s, p) => s + p.granted(), 0);
  const refused = peers.reduce((s, p) => s + p.refused(), 0);
  console.log(`${engine}: ${sessions} session(s) to a ${python ? 'small-buffered ' : ''}target that never reads × ${streams} streams, --buffer-budget ${budget} MiB: ` +
    `windows granted ${(granted / MIB).toFixed(0)} MiB (${refused} streams refused); ` +
    `server RSS ${rss0.toFixed(0)} → peak ${peak.toFixed(0)} MiB (+${(peak - rss0).toFixed(0)}); fds ${fds0} → peak ${peakFds}`);
  for (const p of peers) p.ws.terminate();
  await stop(server.proc);
  for (const c of held) c.destroy();
  nodeTarget?.close();
  if (target) await stop(target.proc);
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--engines <list>', 'engines to measure', 'native,js')
    .option('--sessions <n>', 'attacking sessions', '4')
    .option('--streams <n>', 'streams per session', '1000')
    .option('--budget <mib>', '--buffer-budget of the server', '256')
    .parse()
    .opts<{ engines: string; sessions: string; streams: string; budget: string }>();
  for (const engine of o.engines.split(',')) {
    await measure(engine, 1, Number(o.streams), Number(o.budget));
    await measure(engine, Number(o.sessions), Number(o.streams), Number(o.budget));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
