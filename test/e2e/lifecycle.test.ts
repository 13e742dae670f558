import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { engines } from '../helpers/procs';

const CHILD = join(__dirname, '..', 'fixtures', 'api', 'lifecycle.js');

/** Runs the child; resolves with its exit code (null if it had to be killed) and stdout. */
function run(args: string[], limitMs: number): Promise<{ code: number | null; out: string; killed: boolean }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    let killed = false;
    const timer = setTimeout(() => { killed = true; p.kill('SIGKILL'); }, limitMs);
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, killed }); });
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] the process exits by itself once server and client are shut down`, async (t) => {
    const r = await run([engine], 20_000);
    t.notOk(r.killed, 'exited without being killed (nothing kept it alive)');
    t.equal(r.code, 0, 'exit code 0');
    t.match(r.out, /^echoed 1048576$/m, 'the tunnel carried 1 MiB both ways first');
  });

  t.test(`[${engine}] ... also with a stream still open at shutdown`, async (t) => {
    const r = await run([engine, 'open'], 20_000);
    t.notOk(r.killed, 'exited without being killed');
    t.equal(r.code, 0, 'exit code 0');
    t.match(r.out, /^echoed 1048576$/m);
  });
}

t.test('native engine objects collected before the process ends leave no cleanup hook behind (checked by ASan under npm run test:asan)',
  { skip: engines().includes('native') ? false : 'the native engine is not under test' }, async (t) => {
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, ['--expose-gc', join(__dirname, '..', 'fixtures', 'api', 'gc-engine.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
      p.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }); });
    });
    t.match(r.out, /dropped 20 engines/);
    t.notMatch(r.out, /AddressSanitizer|runtime error/, 'no sanitizer report');
    t.equal(r.code, 0, 'exits 0');
  });
