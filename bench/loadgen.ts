/**
 * The connection-rate load generator: connect-load.c, compiled at bench time
 * with the system C compiler ($CC, else cc), 8 threads of blocking
 * connect / 1-byte echo / close. The former generator, 8 async loops in the
 * bench's own Node process, was what limited the direct row: on a busy
 * 2-core machine it made ~2,000 connections/s using a fifth of a core while
 * the compiled one made 7,000–13,000 against the same echo helper, which
 * then used most of a core itself: so the compiled program is the echo
 * target of those rows too (`connect-load serve`). Where no compiler works
 * the bench falls back to the Node loops and the Node echo helper, and says
 * so.
 */
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { connectRate } from './measure';

export interface ConnectLoad {
  /** Connections per second. */
  rate: number;
  /** CPU the generator itself used, in cores (CPU seconds per second). */
  cpu: number;
}

export interface LoadGenerator {
  /** For the report: what made the connections. */
  describe: string;
  run(port: number, seconds: number, workers?: number): Promise<ConnectLoad>;
  /** The compiled program, whose `serve` mode is the echo target of the connection-rate rows; absent with the fallback. */
  bin?: string;
}

const SOURCE = join(__dirname, '..', '..', 'bench', 'connect-load.c');

/** The Node loops in this process, timed by process.cpuUsage(). */
const inProcess = (why: string): LoadGenerator => ({
  describe: `8 async loops in the bench's Node process (${why})`,
  run: async (port, seconds, workers = 8) => {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const rate = await connectRate(port, seconds, workers);
    const c = process.cpuUsage(c0);
    return { rate, cpu: (c.user + c.system) / 1e3 / (Number(process.hrtime.bigint() - t0) / 1e6) };
  },
});

/** Compiles connect-load.c into `dir`; the Node loops if that fails. */
export function loadGenerator(dir: string): LoadGenerator {
  const cc = process.env.CC || 'cc';
  const bin = join(dir, 'connect-load');
  const r = spawnSync(cc, ['-O2', '-pthread', '-o', bin, SOURCE], { encoding: 'utf8', timeout: 60_000 });
  if (r.error || r.status !== 0) {
    const why = `${cc} could not build bench/connect-load.c`;
    process.stderr.write(`bench: ${why}; connection rates come from the slower in-process generator\n`);
    return inProcess(why);
  }
  return {
    describe: `bench/connect-load.c built with ${cc} -O2: 8 threads of blocking connect, 1-byte echo, close; echo target: its serve mode, one epoll thread`,
    bin,
    run: (port, seconds, workers = 8) => new Promise((resolve, reject) => {
      execFile(bin, [String(port), String(seconds), String(workers)], { timeout: (seconds + 30) * 1000 }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`connect-load: ${err.message} ${stderr}`.trim()));
        const o = JSON.parse(stdout) as { done: number; failed: number; seconds: number; cpu_s: number };
        if (o.failed > o.done / 100) return reject(new Error(`${o.failed} of ${o.done + o.failed} connections failed`));
        resolve({ rate: o.done / o.seconds, cpu: o.cpu_s / o.seconds });
      });
    }),
  };
}
