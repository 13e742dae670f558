#!/usr/bin/env node
// npm pack step: builds prebuilds/linux-x64 and prebuilds/linux-arm64 with
// Zig's C/C++ cross compiler (the PyPI package ziglang, pinned below). Each
// targets glibc 2.28 (Node 20's own floor) and links Zig's libc++ in
// statically, so it loads on any glibc >= 2.28 without libstdc++; N-API 8,
// so one binary serves every Node >= 20 (18 too). Sources and flags are
// binding.gyp's; headers are the running Node's (nothing is downloaded).
// A binary newer than every input is kept (--force rebuilds it).
// One line on stderr when all is well (stdout is npm pack's --json); the
// compiler's log only when a build fails.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync, readdirSync, renameSync, rmSync, statSync } = require('node:fs');
const { join, relative } = require('node:path');
const { compileAddon } = require('./compile-addon');

const ZIG_VERSION = '0.17.1';
/** prebuilds/<dir>: Zig's target. The file's `glibc` tag keeps node-gyp-build from offering it on musl. */
const TARGETS = { 'linux-x64': 'x86_64-linux-gnu.2.28', 'linux-arm64': 'aarch64-linux-gnu.2.28' };
const FILE = 'tws-native.glibc.node';

const root = join(__dirname, '..');
const fail = (why, log = '') => {
  process.stderr.write(`${log}prebuild: failed (${why})${log ? '; the log is above' : ''}\n`);
  process.exit(1);
};

/** The zig command ($ZIG, else the ziglang package's, else zig on PATH) if it is ZIG_VERSION, else why not. */
function findZig() {
  const candidates = process.env.ZIG ? [process.env.ZIG.split(' ')] : [['python3', '-m', 'ziglang'], ['zig']];
  const found = [];
  for (const cmd of candidates) {
    const r = spawnSync(cmd[0], [...cmd.slice(1), 'version'], { encoding: 'utf8' });
    const version = r.status === 0 ? r.stdout.trim() : undefined;
    if (version === ZIG_VERSION) return { zig: cmd };
    if (version) found.push(`${cmd.join(' ')} is ${version}`);
  }
  return { why: `needs Zig ${ZIG_VERSION}: pip install ziglang==${ZIG_VERSION}${found.length ? `; ${found.join(', ')}` : ''}` };
}

/** The newest mtime among what a prebuild is made of. */
function newestInput() {
  const newest = (p) => {
    const st = statSync(p);
    return st.isDirectory() ? Math.max(0, ...readdirSync(p).map((f) => newest(join(p, f)))) : st.mtimeMs;
  };
  return Math.max(...['native', 'binding.gyp', 'scripts/compile-addon.js', 'scripts/prebuild.js']
    .map((p) => join(root, p)).filter(existsSync).map(newest));
}

module.exports = { ZIG_VERSION, TARGETS, FILE, findZig };
if (require.main === module) main();

function main() {
  const nodedir = require('./node-headers')();
  if (!nodedir) fail('no Node headers next to this Node; set npm_config_nodedir');
  const force = process.argv.includes('--force');
  const inputs = newestInput();
  let zig;
  const built = [];
  for (const [dir, target] of Object.entries(TARGETS)) {
    const out = join(root, 'prebuilds', dir, FILE);
    if (!force && existsSync(out) && statSync(out).mtimeMs > inputs) continue;
    if (!zig) {
      const found = findZig();
      if (!found.zig) fail(found.why);
      zig = found.zig;
    }
    // Built under another name and renamed: a concurrent run never sees half a file.
    const tmp = `${out}.${process.pid}.tmp`;
    let log = '';
    const ok = compileAddon({ cxx: [...zig, 'c++', '-target', target], out: tmp, nodedir, extra: ['-s'], log: (l) => { log += l; } });
    if (ok !== true) {
      rmSync(tmp, { force: true });
      fail(ok, log.endsWith('\n') || !log ? log : `${log}\n`);
    }
    renameSync(tmp, out);
    built.push(relative(root, out));
  }
  const kept = Object.keys(TARGETS).map((dir) => join('prebuilds', dir, FILE)).filter((f) => !built.includes(f));
  const said = [built.length && `built ${built.join(', ')}`, kept.length && `up to date: ${kept.join(', ')}`].filter(Boolean);
  process.stderr.write(`prebuild: ${said.join('; ')} (Zig ${ZIG_VERSION}, glibc >= 2.28, N-API 8, for Node >= 20)\n`);
}
