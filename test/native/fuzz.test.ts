import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');
const harness = join(root, 'native', 'fuzz', 'frame_fuzz.cc');
const corpus = join(__dirname, 'corpus');
const hasClang = spawnSync('clang++', ['--version'], { stdio: 'ignore' }).status === 0;

if (hasClang) {
  t.test('libFuzzer finds nothing in the frame parser and TWS2 reader in a bounded run', async (t) => {
    const dir = t.testdir({ corpus: {} });
    const bin = join(dir, 'frame_fuzz');
    execFileSync('clang++', ['-std=c++17', '-O1', '-g', '-fsanitize=fuzzer,address,undefined', '-fno-sanitize-recover=all',
      harness, '-o', bin], { stdio: 'pipe' });
    // Work on a copy: the committed corpus only changes by a deliberate merge.
    cpSync(corpus, join(dir, 'corpus'), { recursive: true });
    const seconds = Number(process.env.TWS_FUZZ_SECONDS ?? 20);
    const r = spawnSync(bin, [`-max_total_time=${seconds}`, '-max_len=4096', `-artifact_prefix=${dir}/`, join(dir, 'corpus')],
      { encoding: 'utf8', timeout: (seconds + 60) * 1000 });
    const done = /Done (\d+) runs/.exec(r.stderr);
    t.equal(r.status, 0, r.status === 0 ? 'no crash, leak or chunking difference' : r.stderr.split('\n').slice(-25).join('\n'));
    t.ok(done && Number(done[1]) > 1000, `${done?.[1]} inputs tried`);
    t.ok(readdirSync(corpus).length >= 3, 'seed corpus present');
  });
} else {
  t.test('without clang, the fuzz harness runs as a sanitized random-input driver over the corpus', async (t) => {
    const dir = t.testdir({});
    const bin = join(dir, 'frame_fuzz_driver');
    execFileSync('g++', ['-std=c++17', '-O1', '-g', '-DTWS_FUZZ_DRIVER', '-fsanitize=address,undefined', '-fno-sanitize-recover=all',
      harness, '-o', bin], { stdio: 'pipe' });
    const files = readdirSync(corpus).map((f) => join(corpus, f));
    const r = spawnSync(bin, ['-runs=50000', ...files], { encoding: 'utf8', timeout: 120_000 });
    t.equal(r.status, 0, r.stderr.slice(-2000) || 'no failure');
    t.match(r.stdout, /no failure/);
  });
}
