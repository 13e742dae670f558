// One compiler run over binding.gyp's sources and flags into one .node file:
// the install step's fallback without node-gyp (scripts/build-native.js, the
// host's c++) and the prebuilds (scripts/prebuild.js, Zig's cross c++). The
// source list and flags live in binding.gyp only.
'use strict';
const { spawnSync } = require('node:child_process');
const { mkdirSync, readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

const root = join(__dirname, '..');

/** binding.gyp's one target, comments stripped. */
function gypTarget() {
  return JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, '')).targets[0];
}

/**
 * Compiles and links the addon to `out` with `cxx` (a command and its first
 * arguments, e.g. ['python3', '-m', 'ziglang', 'c++', '-target', T]),
 * against the Node headers in `nodedir`. `extra` goes last (e.g. -s).
 * Returns true, or why not in one line; `log` gets the compiler's output.
 */
function compileAddon({ cxx, out, nodedir, extra = [], log = () => {} }) {
  const target = gypTarget();
  mkdirSync(dirname(out), { recursive: true });
  const args = [
    ...(target.cflags_cc ?? []), '-fPIC', '-shared', '-pthread',
    ...(target.defines ?? []).map((d) => `-D${d}`), `-DNODE_GYP_MODULE_NAME=${target.target_name}`, '-DBUILDING_NODE_EXTENSION',
    `-I${join(nodedir, 'include', 'node')}`, `-I${dirname(require.resolve('node-addon-api/package.json'))}`,
    ...target.sources.map((f) => join(root, f)),
    '-o', out, ...(target.ldflags ?? []).map((f) => f.replace('<(module_root_dir)', root)), ...(target.libraries ?? []), ...extra,
  ];
  const [cmd, ...pre] = cxx;
  const c = spawnSync(cmd, [...pre, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  log(`${c.stdout || ''}${c.stderr || ''}`);
  if (c.error) return `${cmd}: ${c.error.message}`;
  if (c.status !== 0) return `${cxx.join(' ')} failed: ${(c.stderr || '').trim().split('\n').filter(Boolean).slice(-1)[0] || `exit ${c.status}`}`;
  return true;
}

module.exports = { compileAddon, gypTarget };
