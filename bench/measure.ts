/** The measurements themselves: iperf3 runs, ping-pong latency, connection rate. */
import { execFile } from 'node:child_process';
import { connect, Socket } from 'node:net';

export interface IperfResult {
  gbps: number;
  bytes: number;
}

/** Runs an iperf3 client against `port` (paced to `rate`, e.g. '1G', if given); Gbit/s as measured at the receiver. */
export async function iperf(port: number, seconds: number, opts: { reverse?: boolean; parallel?: number; rate?: string } = {}): Promise<IperfResult> {
  try {
    return await iperfOnce(port, seconds, opts);
  } catch (err) {
    // A test that broke mid-run (tws-rust 0.2 drops its session under load) can leave iperf3's
    // one-test-at-a-time server resetting the next control connection: one more try, a second later.
    if (!/unable to (receive|send) control message|server is busy/.test((err as Error).message)) throw err;
    await new Promise((r) => setTimeout(r, 1000));
    return iperfOnce(port, seconds, opts);
  }
}

function iperfOnce(port: number, seconds: number, opts: { reverse?: boolean; parallel?: number; rate?: string }): Promise<IperfResult> {
  // Long runs leave out the first second (slow start, JIT warm-up); short ones cannot afford it.
  const args = ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-J', '-O', seconds >= 5 ? '1' : '0'];
  if (opts.reverse) args.push('-R');
  if (opts.parallel) args.push('-P', String(opts.parallel));
  if (opts.rate) args.push('-b', opts.rate);
  return new Promise((resolve, reject) => {
    execFile('iperf3', args, { timeout: (seconds + 30) * 1000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
      let json: { error?: string; end?: { sum_received?: { bits_per_second: number; bytes: number } } };
      try {
        json = JSON.parse(stdout);
      } catch {
        return reject(new Error(`iperf3 gave no JSON: ${err?.message ?? stdout.slice(0, 200)}`));
      }
      if (json.error || !json.end?.sum_received) return reject(new Error(`iperf3: ${json.error ?? 'no result'}`));
      resolve({ gbps: json.end.sum_received.bits_per_second / 1e9, bytes: json.end.sum_received.bytes });
    });
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export interface LatencyResult {
  p50: number;
  p99: number;
  samples: number;
}

/** 64-byte ping-pong round trips on one connection for `seconds`; microseconds. A tunnel that closes the connection or answers nothing for 5 s fails it. */
export async function pingPong(port: number, seconds: number): Promise<LatencyResult> {
  const sock = await open(port);
  const msg = Buffer.alloc(64, 0xff); // 0xFF first: the target helper echoes it
  const samples: number[] = [];
  // The first 200 ms warm up the JIT and the connection; they are not counted.
  const warmupUntil = Date.now() + 200;
  const end = warmupUntil + seconds * 1000;
  let stall: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve, reject) => {
    let got = 0;
    let t0 = process.hrtime.bigint();
    const watch = (): void => {
      clearTimeout(stall);
      stall = setTimeout(() => reject(new Error('no answer for 5 s')), 5000);
    };
    watch();
    sock.on('data', (c: Buffer) => {
      watch();
      got += c.length;
      if (got < msg.length) return;
      got -= msg.length;
      const us = Number(process.hrtime.bigint() - t0) / 1000;
      if (Date.now() >= warmupUntil) samples.push(us);
      if (Date.now() >= end) return resolve();
      t0 = process.hrtime.bigint();
      sock.write(msg);
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error('the connection closed')));
    sock.write(msg);
  }).finally(() => {
    clearTimeout(stall);
    sock.destroy();
  });
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), samples: samples.length };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', noDelay: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Connections per second: `workers` loops run `one` (one connection, start to
 * close; true when it went through) back to back for `seconds`.
 */
async function perSecond(what: string, seconds: number, workers: number, one: () => Promise<boolean>): Promise<number> {
  const end = Date.now() + seconds * 1000;
  const started = Date.now();
  let done = 0;
  let failed = 0;
  await Promise.all(Array.from({ length: workers }, async () => {
    while (Date.now() < end) {
      if (await one()) done++;
      else failed++;
    }
  }));
  if (failed > done / 100) throw new Error(`${failed} of ${done + failed} ${what} failed`);
  return done / ((Date.now() - started) / 1000);
}

/** Connections per second: connect, 1-byte echo, close, by `workers` loops for `seconds`. */
export function connectRate(port: number, seconds: number, workers = 8): Promise<number> {
  return perSecond('connections', seconds, workers, () => new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', noDelay: true });
    s.once('connect', () => s.write(Buffer.from([0xff])));
    s.once('data', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  }));
}

/**
 * The same through a SOCKS5 listener, as a SOCKS client does it: greeting,
 * then CONNECT to `target` (an IPv4 `host:port`) once the method is chosen,
 * then the 1-byte echo once the reply says it succeeded, then close.
 */
export function connectRateSocks(port: number, target: string, seconds: number, workers = 8): Promise<number> {
  const [host, tport] = target.split(':');
  const request = Buffer.from([5, 1, 0, 1, ...host!.split('.').map(Number), Number(tport) >> 8, Number(tport) & 0xff]);
  return perSecond('SOCKS5 connections', seconds, workers, () => new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', noDelay: true });
    let got = Buffer.alloc(0);
    let phase: 'method' | 'reply' | 'echo' = 'method';
    const end = (ok: boolean): void => { s.destroy(); resolve(ok); };
    s.once('connect', () => s.write(Buffer.from([5, 1, 0])));
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (phase === 'method' && got.length >= 2) {
        if (got[1] !== 0) return end(false);
        got = got.subarray(2);
        phase = 'reply';
        s.write(request);
      }
      if (phase === 'reply' && got.length >= 10) {
        if (got[1] !== 0) return end(false);
        got = got.subarray(10);
        phase = 'echo';
        s.write(Buffer.from([0xff]));
      }
      if (phase === 'echo' && got.length >= 1) end(true);
    });
    s.once('error', () => end(false));
  }));
}

/**
 * Opens `n` tunnelled connections that stay idle after a 1-byte echo proves
 * each is open; `hold` runs while they are all open. Returns how many opened;
 * throws when any did not (closed, refused, or no echo within 10 s).
 */
export async function idleStreams(port: number, n: number, hold: () => Promise<void>): Promise<number> {
  const open: Socket[] = [];
  let failed = 0;
  const one = (): Promise<void> => new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let settled = false;
    // A tunnel out of file descriptors may leave the connection in its listen backlog, never answered.
    const limit = setTimeout(() => settle(false), 10_000);
    const settle = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(limit);
      if (ok) open.push(s);
      else { failed++; s.destroy(); }
      resolve();
    };
    s.once('connect', () => s.write(Buffer.from([0xff])));
    s.once('data', () => settle(true));
    // A tunnel that cannot open the stream may just close it: that fails it too.
    s.once('error', () => settle(false));
    s.once('close', () => settle(false));
  });
  try {
    for (let i = 0; i < n; i += 200) await Promise.all(Array.from({ length: Math.min(200, n - i) }, one));
    if (failed > 0) throw new Error(`${failed} of ${n} idle streams failed to open (ulimit -n?)`);
    await hold();
    return open.length;
  } finally {
    for (const s of open) s.destroy();
  }
}
