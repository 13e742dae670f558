import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

t.test('the native core passes its unit tests under ASan and UBSan, every input split at every byte', async (t) => {
  const dir = t.testdir({});
  const bin = join(dir, 'core_test');
  execFileSync('g++', ['-std=c++17', '-O1', '-g', '-Wall', '-Wextra', '-Werror', '-fsanitize=address,undefined',
    '-fno-sanitize-recover=all', join(root, 'native', 'test', 'core_test.cc'), '-o', bin], { stdio: 'pipe' });
  const r = spawnSync(bin, [], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, 'exits 0');
  const m = /(\d+) passed, (\d+) failed/.exec(r.stdout);
  t.ok(m, 'prints its summary');
  t.ok(Number(m![1]) >= 40, `${m![1]} checks passed`);
  t.equal(Number(m![2]), 0, r.stdout.split('\n').filter((l) => l.startsWith('FAIL')).join('\n') || 'no check failed');
  t.equal(r.stderr, '', 'no sanitizer report');
});
