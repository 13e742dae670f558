import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorLine, fail, TwsError } from '../../src/util/errors';

const src = join(__dirname, '..', '..', 'src');
const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
  .flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));

t.test('fail() throws one TwsError with the code, the message as given, and the close code', async (t) => {
  t.throws(() => fail('TWS_ERR_CONFIG', 'timeout: expected a number'), { name: 'TwsError', code: 'TWS_ERR_CONFIG', message: 'timeout: expected a number' });
  try {
    fail('TWS_ERR_PROTOCOL', 'bad frame', 1002);
  } catch (err) {
    t.ok(err instanceof TwsError);
    t.equal((err as TwsError).closeCode, 1002);
    t.equal(errorLine(err), 'bad frame (TWS_ERR_PROTOCOL)', 'users see one line with the code');
  }
});

t.test('every declared error code is used outside its declaration, and nothing throws a bare Error', async (t) => {
  const errorsFile = join(src, 'util', 'errors.ts');
  const declared = [...new Set(readFileSync(errorsFile, 'utf8').match(/'TWS_ERR_[A-Z_]+'/g) ?? [])];
  t.ok(declared.length >= 5, declared.join(', '));
  const all = files(src).map((f) => ({ f, text: readFileSync(f, 'utf8') }));
  // ProtocolError's code is used by its class in errors.ts; every other code must appear elsewhere.
  const used = (code: string): boolean => all.some(({ f, text }) => f !== errorsFile && text.includes(code)) || code === "'TWS_ERR_PROTOCOL'";
  t.same(declared.filter((c) => !used(c)), [], 'no code declared but never thrown');
  const bare = all.flatMap(({ f, text }) => (text.match(/new Error\(|throw '|reject\('/g) ?? []).map((m) => `${f.slice(src.length + 1)}: ${m}`));
  t.same(bare, [], 'failures are TwsErrors (argument checks excepted: TypeError)');
});
