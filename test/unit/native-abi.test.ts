import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

t.test('an addon built for another ABI version is refused: auto falls back to js naming the mismatch, native is an error', async (t) => {
  const dir = t.testdir({});
  const fake = join(dir, 'old-addon.js');
  writeFileSync(fake, 'module.exports = { abiVersion: 999, napiVersion: 8 };\n');
  // The loader reads this once per process: set it before the first load.
  process.env.TWS_NATIVE_ADDON = fake;
  const { selectEngine } = await import('../../src/engine/select');
  const { NATIVE_ABI } = await import('../../src/engine/native-addon');
  let why = '';
  const engine = selectEngine('auto', (w) => { why = w; });
  t.equal(engine.name, 'js');
  t.match(why, new RegExp(`ABI version 999, this tws needs ${NATIVE_ABI}`));
  t.throws(() => selectEngine('native'), { code: 'TWS_ERR_ENGINE_UNAVAILABLE', message: /ABI version 999/ });
});
