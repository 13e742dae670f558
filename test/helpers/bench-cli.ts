/**
 * Runs `npm run bench`'s program (dist/bench/main.js) for the bench tests,
 * and finds what a run left behind by an environment mark its children
 * inherit, so other work on the machine (another bench test running beside
 * it) is not mistaken for its own.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const BENCH = join(__dirname, '..', '..', 'dist', 'bench', 'main.js');

export interface BenchRun {
  code: number;
  out: string;
  err: string;
  /** Processes the run started that are still running. */
  leftovers(): string[];
}

/** Runs the bench with `args` (killed after `timeoutMs`). */
export function runBench(args: string[], timeoutMs: number): Promise<BenchRun> {
  const mark = randomUUID();
  return new Promise((resolve) => {
    execFile(process.execPath, [BENCH, ...args], { env: { ...process.env, TWS_BENCH_TEST: mark }, timeout: timeoutMs }, (error, out, err) => {
      resolve({ code: error ? Number((error as unknown as { code: number }).code) : 0, out, err, leftovers: () => marked(`TWS_BENCH_TEST=${mark}`) });
    });
  });
}

/** Processes whose environment holds `mark`. */
function marked(mark: string): string[] {
  return readdirSync('/proc').filter((pid) => /^\d+$/.test(pid) && pid !== String(process.pid)).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(mark);
    } catch {
      return false; // gone, or not ours to read
    }
  });
}
