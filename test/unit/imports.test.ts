import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** Imports point one way (cli → config → app → session → engine → sockets): checked on the source tree. */
const src = join(__dirname, '..', '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

/** Every relative module a file imports or re-exports, as a path under src/ (no extension). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/gm), ...text.matchAll(/\b(?:require|import)\(\s*'(\.[^']+)'\s*\)/g)]
    .map((m) => m[1]!);
  return specs.map((s) => relative(src, resolve(dirname(file), s)));
}

const all = files(src).map((f) => ({ file: relative(src, f), imports: importsOf(f) }));
const under = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);

function violations(from: (file: string) => boolean, to: (target: string) => boolean): string[] {
  return all.filter((f) => from(f.file)).flatMap((f) => f.imports.filter(to).map((i) => `${f.file} → ${i}`));
}

t.test('the scan sees the tree (a broken pattern would pass everything)', async (t) => {
  t.ok(all.length > 20, `${all.length} files`);
  t.ok(all.find((f) => f.file === 'api.ts')?.imports.includes('server/server'), 'api.ts imports server/server');
});

t.test('config/ imports neither client/ nor server/', async (t) => {
  t.same(violations((f) => under(f, 'config'), (i) => under(i, 'client') || under(i, 'server')), []);
});

t.test('client/ and server/ do not import each other', async (t) => {
  t.same(violations((f) => under(f, 'client'), (i) => under(i, 'server')), [], 'client → server');
  t.same(violations((f) => under(f, 'server'), (i) => under(i, 'client')), [], 'server → client');
});

t.test('nothing outside src/engine imports an engine implementation, only the interface and the selection', async (t) => {
  const impl = (i: string): boolean => under(i, 'engine/js') || /^engine\/native/.test(i);
  t.same(violations((f) => !under(f, 'engine'), impl), []);
});

t.test('below the composition root nothing imports cli/ or api.ts', async (t) => {
  t.same(violations((f) => !under(f, 'cli') && f !== 'index.ts', (i) => under(i, 'cli') || i === 'api'), []);
});

t.test('the engine interface names no ws type: engines get sockets, not WebSockets', async (t) => {
  t.notMatch(readFileSync(join(src, 'engine', 'types.ts'), 'utf8'), /from 'ws'/);
});
