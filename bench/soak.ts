/**
 * `npm run soak`: 1,000 concurrent streams of mixed sizes and lifetimes
 * through a tunnel, engine after engine, for a bounded time (5 minutes in
 * all by default). Every stream's echo is compared with what was sent; the
 * tws processes' RSS and open file descriptors are sampled and must stay
 * flat after warm-up. Exits 1 on any lost or altered byte or on growth.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, Server, Socket } from 'node:net';
import { Command } from 'commander';
import { makeCa, makeCert } from './certs';
import { Front, startTunnel, Tunnel } from './procs';

interface Options {
  seconds: number;
  streams: number;
  engines: string[];
  tls: boolean;
}

function parseArgs(argv: string[]): Options {
  const o = new Command('npm run soak --')
    .description('Soak test: many concurrent streams through each engine; no byte lost, memory and fds flat')
    .option('--duration <s>', 'seconds in all, shared by the engines', '300')
    .option('--streams <n>', 'concurrent streams', '1000')
    .option('--engines <list>', 'engines, comma-separated', 'native,js')
    .option('--tls', 'wss:// straight to the server (--tls-cert, a throw-away CA)')
    .parse(argv, { from: 'user' })
    .opts();
  const seconds = Number(o.duration);
  const streams = Number(o.streams);
  if (!(seconds >= 10 && seconds <= 86_400) || !(Number.isInteger(streams) && streams >= 1 && streams <= 10_000)) {
    process.stderr.write('soak: --duration must be 10-86400 s and --streams 1-10000\n');
    process.exit(2);
  }
  return { seconds, streams, engines: String(o.engines).split(',').filter(Boolean), tls: o.tls === true };
}

/** A size from 1 byte to 4 MiB, log-uniform: many small streams, some large ones. */
function size(): number {
  return Math.max(1, Math.floor(Math.exp(Math.random() * Math.log(4 * 1024 * 1024))));
}

interface Totals {
  streams: number;
  bytes: number;
  mismatches: number;
  errors: number;
  lastError: string;
}

/**
 * One stream: writes `n` random bytes in chunks with random pauses (so
 * lifetimes range from milliseconds to seconds), half-closes, and checks the
 * echo by SHA-256 and length.
 */
function oneStream(port: number, totals: Totals): Promise<void> {
  return new Promise((resolve) => {
    const n = size();
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    let written = 0;
    const s: Socket = connect(port, '127.0.0.1');
    let done = false;
    const finish = (err?: string): void => {
      if (done) return;
      done = true;
      s.destroy();
      if (err) {
        totals.errors++;
        totals.lastError = err;
      } else if (received !== n || sent.digest('hex') !== got.digest('hex')) {
        totals.mismatches++;
        totals.lastError = `stream of ${n} bytes: ${received} came back${received === n ? ', different bytes' : ''}`;
      } else {
        totals.streams++;
        totals.bytes += n;
      }
      resolve();
    };
    const timer = setTimeout(() => finish(`stream of ${n} bytes: no full echo within 120 s`), 120_000);
    s.on('data', (d: Buffer) => {
      received += d.length;
      got.update(d);
    });
    s.on('end', () => { clearTimeout(timer); finish(); });
    s.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); finish(e.code ?? e.message); });
    const paced = Math.random() < 0.3;
    const write = (): void => {
      while (written < n) {
        const chunk = randomBytes(Math.min(n - written, 1 + Math.floor(Math.random() * 65536)));
        written += chunk.length;
        sent.update(chunk);
        const more = s.write(chunk);
        if (paced && written < n) return void setTimeout(write, Math.random() * 200);
        if (!more) return void s.once('drain', write);
      }
      s.end();
    };
    s.once('connect', write);
  });
}

function sample(pid: number): { rssMb: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssMb: Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** wss:// to the server itself: certificates from a throw-away CA, the server given --tls-cert. */
function tlsSetup(): { front: Front; serverArgs: string[]; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'tws-soak-tls-'));
  const ca = makeCa(dir, 'soak-ca');
  const leaf = makeCert(dir, ca, 'soak-leaf', ['localhost']);
  return {
    front: async (port) => ({ url: `wss://localhost:${port}/`, clientArgs: ['--ca', ca.cert], stop: async () => undefined }),
    serverArgs: ['--tls-cert', leaf.cert, '--tls-key', leaf.key],
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function soakEngine(engine: string, target: string, seconds: number, streams: number, tls?: ReturnType<typeof tlsSetup>): Promise<boolean> {
  const tun: Tunnel = await startTunnel(engine, target, [], tls?.front, tls?.serverArgs);
  const totals: Totals = { streams: 0, bytes: 0, mismatches: 0, errors: 0, lastError: '' };
  const pids = { server: tun.server.pid!, client: tun.client.pid! };
  const samples: { t: number; server: ReturnType<typeof sample>; client: ReturnType<typeof sample> }[] = [];
  const baseline = { server: sample(pids.server).fds, client: sample(pids.client).fds };
  const started = Date.now();
  const end = started + seconds * 1000;
  const sampler = setInterval(() => {
    samples.push({ t: (Date.now() - started) / 1000, server: sample(pids.server), client: sample(pids.client) });
    const last = samples[samples.length - 1]!;
    process.stderr.write(`  ${engine} ${last.t.toFixed(0)} s: ${totals.streams} streams, ${(totals.bytes / 1e9).toFixed(2)} GB ok, ` +
      `${totals.mismatches + totals.errors} bad; RSS server ${last.server.rssMb.toFixed(0)} MB client ${last.client.rssMb.toFixed(0)} MB; ` +
      `fds ${last.server.fds}/${last.client.fds}\n`);
  }, 5000);
  const worker = async (): Promise<void> => {
    while (Date.now() < end) await oneStream(tun.port, totals);
  };
  let drained = baseline;
  try {
    await Promise.all(Array.from({ length: streams }, worker));
    clearInterval(sampler);
    // Every stream has ended: both processes must be back to their fds from before the run.
    await new Promise((r) => setTimeout(r, 1000));
    drained = { server: sample(pids.server).fds, client: sample(pids.client).fds };
  } finally {
    clearInterval(sampler);
    await tun.stop();
  }
  // Flat after warm-up: the first fifth of the run is warm-up; compare the mean
  // of the samples just after it with the mean of the last ones.
  // Only samples taken while all streams ran: the drain at the end is not the steady state.
  const after = samples.filter((s) => s.t >= seconds / 5 && s.t <= seconds);
  const k = Math.max(1, Math.floor(after.length / 4));
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const growth = (pick: (s: (typeof samples)[number]) => number): { from: number; to: number } =>
    ({ from: mean(after.slice(0, k).map(pick)), to: mean(after.slice(-k).map(pick)) });
  // RSS: flat (within 25%) from the end of warm-up to the end. Fds: how many are open at a
  // moment depends on how many streams are between two connections, so the test is that they
  // never exceed one per stream (plus the baseline) and all come back when the streams end.
  const peak = (pick: (s: (typeof samples)[number]) => number): number => Math.max(0, ...samples.map(pick));
  const checks = [
    { what: 'server RSS MB', ...growth((s) => s.server.rssMb), limit: 1.25 },
    { what: 'client RSS MB', ...growth((s) => s.client.rssMb), limit: 1.25 },
  ];
  const fdChecks = [
    { what: 'server fds', base: baseline.server, peak: peak((s) => s.server.fds), end: drained.server },
    { what: 'client fds', base: baseline.client, peak: peak((s) => s.client.fds), end: drained.client },
  ];
  let ok = totals.mismatches === 0 && totals.errors === 0 && totals.streams > 0 && after.length >= 2;
  process.stdout.write(`\n${engine}: ${totals.streams} streams, ${(totals.bytes / 1e9).toFixed(2)} GB echoed intact, ` +
    `${totals.mismatches} altered or short, ${totals.errors} failed${totals.lastError ? ` (last: ${totals.lastError})` : ''}\n`);
  for (const c of checks) {
    const flat = c.to <= c.from * c.limit;
    ok &&= flat;
    process.stdout.write(`  ${c.what}: ${c.from.toFixed(0)} after warm-up → ${c.to.toFixed(0)} at the end ${flat ? 'flat' : `GROWING (limit ${c.limit}x)`}\n`);
  }
  for (const c of fdChecks) {
    const bounded = c.peak <= c.base + streams + 16;
    const back = c.end <= c.base + 4;
    ok &&= bounded && back;
    process.stdout.write(`  ${c.what}: ${c.base} before, peak ${c.peak} (${bounded ? 'at most one per stream' : 'MORE THAN ONE PER STREAM'}), ` +
      `${c.end} after the streams ended (${back ? 'all returned' : 'LEAKED'})\n`);
  }
  return ok;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const echo: Server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  // Node's default backlog (511) overflows when 1,000 streams connect at once: the target would
  // then leave connections unaccepted for a minute, and tws would rightly report them failed.
  await new Promise<void>((r) => echo.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  const target = `127.0.0.1:${(echo.address() as { port: number }).port}`;
  const per = o.seconds / o.engines.length;
  let ok = true;
  for (const engine of o.engines) {
    process.stderr.write(`soak: ${engine}${o.tls ? ' over wss://' : ''}, ${o.streams} concurrent streams for ${per.toFixed(0)} s\n`);
    const tls = o.tls ? tlsSetup() : undefined;
    try {
      ok = (await soakEngine(engine, target, per, o.streams, tls)) && ok;
    } finally {
      tls?.cleanup();
    }
  }
  echo.close();
  process.stdout.write(`\nsoak ${ok ? 'passed' : 'FAILED'}\n`);
  process.exit(ok ? 0 : 1);
}

main().catch((err: Error) => {
  process.stderr.write(`soak: could not run: ${err.message}\n`);
  process.exit(1);
});
