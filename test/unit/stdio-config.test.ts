/**
 * `--stdio HOST:PORT` (YAML `stdio`) in the resolved client config: no
 * tunnel is required with it, and it logs at warn unless told otherwise.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readConfigFile, resolveConfig } from '../../src/config/load';
import { TwsError } from '../../src/util/errors';

const base = { server: 'ws://127.0.0.1:1/', passwd: 'x' };
const client = (flags: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => resolveConfig('client', { env, flags: { ...base, ...flags } });

t.test('--stdio needs no -l/-r/-L, and is quiet (warn) by default', async (t) => {
  const c = client({ stdio: 'db.internal:22' });
  t.equal(c.stdio, 'db.internal:22');
  t.equal(c.logLevel, 'warn', 'warn, not info');
  t.same(c.tunnels, []);
  t.throws(() => client({}), TwsError, 'without --stdio a tunnel is still required');
});

t.test('--stdio keeps a log level that was asked for (--log-level, or -v as debug)', async (t) => {
  t.equal(client({ stdio: 'h:22', logLevel: 'info' }).logLevel, 'info');
  t.equal(client({ stdio: 'h:22', logLevel: 'debug' }).logLevel, 'debug');
  t.equal(client({ logLevel: 'error', stdio: 'h:22' }).logLevel, 'error');
});

t.test('--stdio validates its target as -r does', async (t) => {
  t.throws(() => client({ stdio: 'no-port' }), /stdio/);
  t.throws(() => client({ stdio: 'h:99999' }), /stdio/);
});

t.test('YAML stdio: works from a config file that also has tunnels (they are not used)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tws-stdio-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'c.yaml'), 'server: ws://127.0.0.1:1/\npasswd: x\nstdio: "[::1]:22"\ntunnels: ["2222:db:22"]\n');
  const c = resolveConfig('client', { file: readConfigFile(join(dir, 'c.yaml'), 'client'), env: {}, flags: {} });
  t.equal(c.stdio, '[::1]:22');
  t.equal(c.logLevel, 'warn');
});
