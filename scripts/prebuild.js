#!/usr/bin/env node
// npm pack step: builds prebuilds/<platform>-<arch>/tws-native.node with
// prebuildify (N-API, so one binary serves every Node >= 20 on the platform),
// against the running Node's headers. Installs then need no compiler and no
// install script (npm 11 skips dependencies' install scripts by default).
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const nodedir = require('./node-headers')();
if (!nodedir) {
  process.stderr.write('prebuild: no Node headers next to this Node; set npm_config_nodedir\n');
  process.exit(1);
}
const bin = require.resolve('prebuildify/bin.js');
const r = spawnSync(process.execPath, [bin, '--napi', '--strip'], {
  cwd: join(__dirname, '..'),
  stdio: ['ignore', 2, 2], // build chatter to stderr: stdout is npm pack's (--json)
  env: { ...process.env, npm_config_nodedir: nodedir },
});
process.exit(r.status ?? 1);
