#!/usr/bin/env node
// npm pack step: builds prebuilds/<platform>-<arch>/tws-native.node with
// prebuildify (N-API, so one binary serves every Node >= 20 on the platform),
// against the running Node's headers. Installs then need no compiler and no
// install script (npm 11 skips dependencies' install scripts by default).
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const nodedir = require('./node-headers')();
if (!nodedir) {
  process.stderr.write('prebuild: no Node headers next to this Node; set npm_config_nodedir\n');
  process.exit(1);
}
const bin = require.resolve('prebuildify/bin.js');
const root = join(__dirname, '..');
// The build log (node-gyp's, some 300 lines) is kept and shown only when the
// build fails; a good build is one line, on stderr: stdout is npm pack's (--json).
const r = spawnSync(process.execPath, [bin, '--napi', '--strip'], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'pipe'],
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
  env: { ...process.env, npm_config_nodedir: nodedir },
});
const target = join('prebuilds', `${process.platform}-${process.arch}`, 'tws-native.node');
if (r.status === 0 && existsSync(join(root, target))) {
  process.stderr.write(`prebuild: ${target} built (N-API, for Node >= 20 on ${process.platform}-${process.arch})\n`);
  process.exit(0);
}
process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
process.stderr.write(`prebuild: failed (${r.error ? r.error.message : r.signal ?? `exit ${r.status}`}); the log is above\n`);
process.exit(1);
