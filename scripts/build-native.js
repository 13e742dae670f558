#!/usr/bin/env node
// npm install step for the native addon. Uses a prebuilt or already-built
// addon when one loads; otherwise builds it with node-gyp against the local
// Node headers (npm's nodedir; nothing is downloaded). A failed build never
// fails the install: tws then runs the js engine and says so in one line.
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const root = join(__dirname, '..');

function loads() {
  try {
    require('node-gyp-build')(root);
    return true;
  } catch {
    return false;
  }
}

if (process.env.TWS_SKIP_NATIVE_BUILD === '1') process.exit(0);
// In a dev tree, a build older than its sources is rebuilt, so `npm test` never runs a stale addon.
function stale() {
  const { readdirSync, statSync, existsSync } = require('node:fs');
  const built = join(root, 'build', 'Release', 'tws_native.node');
  if (!existsSync(built)) return false;
  const builtAt = statSync(built).mtimeMs;
  const newer = (p) => {
    const st = statSync(p);
    if (st.isDirectory()) return readdirSync(p).some((f) => newer(join(p, f)));
    return st.mtimeMs > builtAt;
  };
  return ['native', 'binding.gyp'].some((p) => existsSync(join(root, p)) && newer(join(root, p)));
}

if (loads() && process.env.TWS_REBUILD_NATIVE !== '1' && !stale()) process.exit(0);

// npm tells its scripts where its bundled node-gyp is; outside npm, look next to this Node.
const bundled = join(process.execPath, '..', '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const nodeGyp = process.env.npm_config_node_gyp || (require('node:fs').existsSync(bundled) ? bundled : undefined);
// Headers from the Node that runs us (e.g. /usr/include/node): never a download.
const nodedir = require('./node-headers')();
if (!nodedir) {
  process.stderr.write('tws-native: native addon not built (no Node headers next to this Node; set npm_config_nodedir); the js engine will be used\n');
  process.exit(0);
}
const cmd = nodeGyp ? process.execPath : 'node-gyp';
const args = [...(nodeGyp ? [nodeGyp] : []), 'rebuild', `--nodedir=${nodedir}`];
const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.status === 0 && loads()) process.exit(0);
const why = r.error ? r.error.message : gypFailure(`${r.stderr}\n${r.stdout}`) || `exit ${r.status}`;
// node-gyp needs Python and make besides the compiler: without them, the
// compiler alone builds the same sources with binding.gyp's flags.
const direct = compileDirectly(nodedir);
if (direct === true && loads()) {
  process.stderr.write(`tws-native: node-gyp could not build the addon (${why}); built it with the C++ compiler alone\n`);
  process.exit(0);
}
process.stderr.write(`tws-native: native addon not built (${why}${direct === true ? '' : `; ${direct}`}); the js engine will be used\n`);
process.exit(0);

/** node-gyp's reason in a few words: a missing Python or make, else its last error line. */
function gypFailure(log) {
  if (/gyp ERR! find Python/.test(log)) return 'node-gyp found no Python';
  if (/not found: make|spawn make ENOENT|make: not found/.test(log)) return 'node-gyp found no make';
  return log.trim().split('\n').filter((l) => l && !/gyp ERR! not ok/.test(l)).slice(-1)[0];
}

/** One compiler run over binding.gyp's sources and flags into build/Release: true, or why not. */
function compileDirectly(nodedir) {
  const { compileAddon, gypTarget } = require('./compile-addon');
  const out = join(root, 'build', 'Release', `${gypTarget().target_name}.node`);
  return compileAddon({ cxx: [process.env.CXX || 'c++'], out, nodedir });
}
