import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addonSources } from '../helpers/native-sources';

const root = join(__dirname, '..', '..');

function gypSources(): string[] {
  return addonSources().sort();
}

function cmakeSources(): string[] {
  const text = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');
  const m = /set\(TWS_NATIVE_SOURCES([^)]*)\)/.exec(text);
  return (m?.[1] ?? '').split(/\s+/).filter(Boolean).sort();
}

t.test('binding.gyp and CMakeLists.txt build the same sources', async (t) => {
  const gyp = gypSources();
  t.ok(gyp.length > 0, `sources: ${gyp.join(', ')}`);
  t.same(cmakeSources(), gyp);
});

t.test('cmake-js builds a loadable addon offline from the local Node headers', async (t) => {
  const out = t.testdir({});
  const r = spawnSync(process.execPath, [require.resolve('cmake-js/bin/cmake-js'), 'build', '--out', out], {
    cwd: root, encoding: 'utf8', timeout: 120_000,
  });
  t.equal(r.status, 0, r.status === 0 ? 'cmake-js build succeeded' : (r.stdout + r.stderr).slice(-3000));
  t.notMatch(r.stdout + r.stderr, /https?:\/\//, 'nothing was fetched');
  const addon = require(join(out, 'Release', 'tws_native.node')) as { abiVersion: number; napiVersion: number; testing: { decodeStream: unknown } };
  t.equal(addon.napiVersion, 8);
  t.equal(addon.abiVersion, (await import('../../src/engine/native-addon')).NATIVE_ABI, 'the ABI version the loader expects');
  t.equal(typeof addon.testing.decodeStream, 'function');
});

t.test('npm install built the addon with node-gyp, and the loader finds it', async (t) => {
  const { loadNativeAddon } = await import('../../src/engine/native-addon');
  const { addon, error } = loadNativeAddon();
  t.ok(addon, error ?? 'loaded');
  t.equal(addon?.napiVersion, 8);
});
