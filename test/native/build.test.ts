import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addonSources } from '../helpers/native-sources';
import { skipLine } from '../helpers/tools';

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

const which = (cmd: string): string | undefined => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim() || undefined;
const compiler = { node: process.execPath, 'c++': which('c++'), as: which('as'), ld: which('ld') };
const noCompiler = Object.entries(compiler).filter(([, p]) => !p).map(([n]) => n);

t.test('without Python and make (what node-gyp needs), npm install builds the addon with the C++ compiler alone', {
  timeout: 600_000, skip: noCompiler.length > 0 ? skipLine(noCompiler.join(', '), 'g++') : false,
}, async (t) => {
  const { cpSync, mkdirSync, symlinkSync } = await import('node:fs');
  // A copy of what the install step reads, and a PATH of the compiler and node only.
  const dir = t.testdir({});
  for (const f of ['binding.gyp', 'package.json', 'native', 'scripts']) cpSync(join(root, f), join(dir, f), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const [name, path] of Object.entries(compiler)) symlinkSync(path!, join(bin, name));
  t.equal(spawnSync('/bin/sh', ['-c', 'command -v python3 || command -v make'], { env: { PATH: bin }, encoding: 'utf8' }).stdout.trim(), '', 'no python3 or make on this PATH');
  const r = spawnSync(process.execPath, [join(dir, 'scripts', 'build-native.js')], {
    cwd: dir, encoding: 'utf8', timeout: 540_000, env: { PATH: bin, HOME: dir, TWS_REBUILD_NATIVE: '1' },
  });
  t.equal(r.status, 0, 'the install step succeeds');
  t.match(r.stderr, /node-gyp could not build the addon \(node-gyp found no Python\); built it with the C\+\+ compiler alone/, r.stderr);
  const addon = require(join(dir, 'build', 'Release', 'tws_native.node')) as { abiVersion: number; napiVersion: number };
  t.equal(addon.napiVersion, 8);
  t.equal(addon.abiVersion, (await import('../../src/engine/native-addon')).NATIVE_ABI, 'and it loads, with the ABI the loader expects');
});
