import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

type Value = number | boolean;
interface Case { why: string; in: Record<string, Value>; out: Value | Record<string, Value> }
const vectors = JSON.parse(readFileSync(join(root, 'test', 'vectors', 'flow-control.json'), 'utf8')) as Record<string, unknown>;
const tables = Object.entries(vectors).filter((e): e is [string, Case[]] => Array.isArray(e[1]));

/** What native/test/flow_vectors.cc prints for a case's expected output. */
function expected(table: string, out: Case['out']): string {
  if (table === 'autotune') {
    const o = out as { endEpoch: boolean; grow: number; rate: number };
    return `${o.endEpoch ? 1 : 0} ${o.grow} ${o.rate}`;
  }
  return typeof out === 'boolean' ? (out ? '1' : '0') : String(out);
}

t.test('the native flow-control rules (core/flow.h) give every result in the shared vector table', async (t) => {
  const dir = t.testdir({});
  const bin = join(dir, 'flow_vectors');
  execFileSync('g++', ['-std=c++17', '-O1', '-g', '-Wall', '-Wextra', '-Werror', '-fsanitize=address,undefined',
    '-fno-sanitize-recover=all', join(root, 'native', 'test', 'flow_vectors.cc'), '-o', bin], { stdio: 'pipe' });
  const cases = tables.flatMap(([table, list]) => list.map((c) => ({ table, c })));
  t.ok(cases.length >= 30, `${cases.length} cases in ${tables.length} tables`);
  const input = cases.map(({ table, c }) =>
    `${table} ${Object.entries(c.in).map(([k, v]) => `${k}=${typeof v === 'boolean' ? (v ? 1 : 0) : v}`).join(' ')}`).join('\n') + '\n';
  const r = spawnSync(bin, [], { input, encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, r.stderr || 'exits 0');
  const lines = r.stdout.trimEnd().split('\n');
  t.equal(lines.length, cases.length, 'one answer per case');
  cases.forEach(({ table, c }, i) => {
    const got = lines[i] ?? '';
    if (table === 'autotune') {
      // The rate is a double: compare it as a number, the rest exactly.
      const [end, grow, rate] = got.split(' ');
      const o = c.out as { endEpoch: boolean; grow: number; rate: number };
      t.same({ endEpoch: end === '1', grow: Number(grow) }, { endEpoch: o.endEpoch, grow: o.grow }, `${table}: ${c.why}`);
      t.ok(Math.abs(Number(rate) - o.rate) <= 1e-9 * Math.max(1, o.rate), `${table}: ${c.why} (rate ${rate})`);
    } else {
      t.equal(got, expected(table, c.out), `${table}: ${c.why}`);
    }
  });
});
