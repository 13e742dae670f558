import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { engineSources } from '../helpers/native-sources';

const root = join(__dirname, '..', '..');

t.test('the native engine survives hostile peers under ASan and UBSan: no use-after-free, bounded queues, the 101 first, RFC 6455 close replies', async (t) => {
  const dir = t.testdir({});
  const bin = join(dir, 'engine_test');
  execFileSync('g++', ['-std=c++17', '-O1', '-g', '-pthread', '-Wall', '-Wextra', '-Werror', '-fsanitize=address,undefined',
    '-fno-sanitize-recover=all', join(root, 'native', 'test', 'engine_test.cc'), ...engineSources(), '-o', bin],
  { stdio: 'pipe' });
  const r = spawnSync(bin, [], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } });
  const m = /(\d+) passed, (\d+) failed/.exec(r.stdout);
  t.ok(m, `prints its summary${m ? '' : `\n${r.stdout}\n${r.stderr.slice(-3000)}`}`);
  t.ok(Number(m?.[1]) >= 40, `${m?.[1]} checks passed`);
  t.equal(Number(m?.[2]), 0, r.stdout.split('\n').filter((l) => l.startsWith('FAIL')).join('\n') || 'no check failed');
  t.equal(r.stderr, '', 'no sanitizer report');
  t.equal(r.status, 0, 'exits 0');
});
