/**
 * The real tws-rust 0.2 binary (../shared/peers/README.md) for interop tests:
 * found through TWS_RUST_BIN, then ../shared/peers/ beside the repository,
 * then /work/shared/peers/ (a clone elsewhere, e.g. /tmp/ci); absent, the
 * tests skip with one line.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { connect } from './net';
import { needsPeer, peerBin } from './peer-bin';

/** The binary's path, or undefined. */
export function twsRustBin(): string | undefined {
  return peerBin('TWS_RUST_BIN', 'tws-rust');
}

/** Why tests that need tws-rust skip, or false when it is there. */
export function needsTwsRust(): string | false {
  return needsPeer('TWS_RUST_BIN', 'tws-rust');
}

export interface RustProc {
  proc: ChildProcess;
  logs(): string;
  waitLog(re: RegExp, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts tws-rust with `args` and waits for a line matching `ready`. */
export async function runRust(args: string[], ready: RegExp): Promise<RustProc> {
  const proc = spawn(twsRustBin()!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const waitLog = async (re: RegExp, timeoutMs = 10_000): Promise<void> => {
    const end = Date.now() + timeoutMs;
    while (!re.test(out)) {
      if (proc.exitCode !== null || Date.now() > end) throw new Error(`tws-rust: no ${re} in:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const p: RustProc = {
    proc,
    logs: () => out,
    waitLog,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
  await waitLog(ready).catch(async (err) => { await p.stop(); throw err; });
  return p;
}

/** tws-rust takes only a fixed port. */
export { freePort } from './net';

/**
 * Sends `data` to an echo behind `port` and reads as many bytes back, then
 * closes (tws-rust has no half-close: an EOF would end the stream both ways
 * before the echo came back).
 */
export function echoExactly(port: number, data: Buffer, timeoutMs = 60_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`echo of ${data.length} bytes: ${got} after ${timeoutMs} ms`)); }, timeoutMs);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= data.length) {
        clearTimeout(timer);
        s.end();
        resolve(Buffer.concat(chunks));
      }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
    s.on('close', () => { clearTimeout(timer); if (got < data.length) reject(new Error(`closed after ${got} of ${data.length} bytes`)); });
    s.write(data);
  });
}
