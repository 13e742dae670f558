// Where the running Node's own headers are (e.g. prefix /usr with
// /usr/include/node): node-gyp is pointed there so a build never downloads
// headers. npm_config_nodedir, when set, wins.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');

module.exports = function nodeHeadersDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = join(process.execPath, '..', '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
};
