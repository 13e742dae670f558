import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { engineSources, muxSources } from '../helpers/native-sources';
import { needsLibFuzzer } from '../helpers/tools';

const root = join(__dirname, '..', '..');
const noFuzzer = needsLibFuzzer();

/**
 * The three harnesses: the frame parser + TWS2 reader (pure, fast), the
 * sans-I/O mux core (pure, fast), and a whole session (a real Engine on its
 * I/O thread, fed through a socketpair).
 */
const harnesses = [
  { name: 'frame parser and TWS2 reader', file: 'frame_fuzz.cc', sources: [] as string[], corpus: 'corpus', maxLen: 4096, minRuns: 1000 },
  { name: 'mux (a live Engine session)', file: 'session_fuzz.cc', sources: engineSources(), corpus: 'corpus-session', maxLen: 1024, minRuns: 200 },
  { name: 'sans-I/O mux core (stalled peers, random read budgets, streams ending every way)', file: 'mux_fuzz.cc', sources: muxSources(),
    corpus: 'corpus-mux', maxLen: 2048, minRuns: 5000 },
];

for (const h of harnesses) {
  const harness = join(root, 'native', 'fuzz', h.file);
  const sources = h.sources;
  const corpus = join(__dirname, h.corpus);
  if (!noFuzzer) {
    t.test(`libFuzzer finds nothing in the ${h.name} in a bounded run`, async (t) => {
      const dir = t.testdir({ corpus: {} });
      const bin = join(dir, 'fuzz');
      execFileSync('clang++', ['-std=c++17', '-O1', '-g', '-pthread', '-fsanitize=fuzzer,address,undefined', '-fno-sanitize-recover=all',
        harness, ...sources, '-o', bin], { stdio: 'pipe' });
      // Work on a copy: the committed corpus only changes by a deliberate merge.
      cpSync(corpus, join(dir, 'corpus'), { recursive: true });
      const seconds = Number(process.env.TWS_FUZZ_SECONDS ?? 20);
      const r = spawnSync(bin, [`-max_total_time=${seconds}`, `-max_len=${h.maxLen}`, `-artifact_prefix=${dir}/`, join(dir, 'corpus')],
        { encoding: 'utf8', timeout: (seconds + 60) * 1000 });
      const done = /Done (\d+) runs/.exec(r.stderr);
      t.equal(r.status, 0, r.status === 0 ? 'no crash, hang, leak or chunking difference' : r.stderr.split('\n').slice(-25).join('\n'));
      t.ok(done && Number(done[1]) > h.minRuns, `${done?.[1]} inputs tried`);
      t.ok(readdirSync(corpus).length >= 3, 'seed corpus present');
    });
  } else {
    // Said once per harness, so that .ci/run (which installs clang) notices libFuzzer did not run.
    t.test(`libFuzzer finds nothing in the ${h.name} in a bounded run`, { skip: noFuzzer }, () => undefined);
    t.test(`without libFuzzer, the ${h.name} harness runs as a sanitized random-input driver over the corpus`, async (t) => {
      const dir = t.testdir({});
      const bin = join(dir, 'fuzz_driver');
      execFileSync('g++', ['-std=c++17', '-O1', '-g', '-pthread', '-DTWS_FUZZ_DRIVER', '-fsanitize=address,undefined', '-fno-sanitize-recover=all',
        harness, ...sources, '-o', bin], { stdio: 'pipe' });
      const files = readdirSync(corpus).map((f) => join(corpus, f));
      const r = spawnSync(bin, [`-runs=${h.minRuns * 10}`, ...files], { encoding: 'utf8', timeout: 120_000 });
      t.equal(r.status, 0, r.stderr.slice(-2000) || 'no failure');
      t.match(r.stdout, /no failure/);
    });
  }
}
