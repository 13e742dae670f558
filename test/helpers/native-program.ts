import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Test } from 'tap';

const root = join(__dirname, '..', '..');

type Checks = Test;

/**
 * Builds a native test program (native/test/<file>) with `sources` under
 * ASan and UBSan, runs it, and checks its closing "N passed, N failed"
 * line: at least `minChecks` passed, none failed, no sanitizer report.
 * `libs`: what to link besides (-lssl).
 */
export function runNativeProgram(t: Checks, file: string, sources: string[], minChecks: number, timeoutMs = 120_000, libs: string[] = []): void {
  const bin = join(t.testdir({}), file.replace(/\.cc$/, ''));
  execFileSync('g++', ['-std=c++17', '-O1', '-g', '-pthread', '-Wall', '-Wextra', '-Werror', '-fsanitize=address,undefined',
    '-fno-sanitize-recover=all', join(root, 'native', 'test', file), ...sources, '-o', bin, ...libs], { stdio: 'pipe' });
  const r = spawnSync(bin, [], { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } });
  const m = /(\d+) passed, (\d+) failed/.exec(r.stdout);
  t.ok(m, `prints its summary${m ? '' : `\n${r.stdout}\n${r.stderr.slice(-3000)}`}`);
  t.ok(Number(m?.[1]) >= minChecks, `${m?.[1]} checks passed`);
  t.equal(Number(m?.[2]), 0, r.stdout.split('\n').filter((l) => l.startsWith('FAIL')).join('\n') || 'no check failed');
  t.equal(r.stderr, '', 'no sanitizer report');
  t.equal(r.status, 0, 'exits 0');
}
