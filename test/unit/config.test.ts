import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readConfigFile, resolveConfig } from '../../src/config/load';
import { normalizeArgv } from '../../src/cli/program';
import { TwsError } from '../../src/util/errors';

const compat = join(__dirname, '..', 'fixtures', 'tws-rust');

t.test("tws-rust's example client.yaml and server.yaml load unchanged", async (t) => {
  const c = resolveConfig('client', { file: readConfigFile(join(compat, 'tws-rust-client.yaml'), 'client'), env: {}, flags: {} });
  t.same(c.listen, { host: '127.0.0.1', port: 5203 });
  t.equal(c.server.href, 'ws://127.0.0.1:5202/');
  t.equal(c.remote, '127.0.0.1:5201');
  t.equal(c.passwd, 'my_super_safe_password');
  t.equal(c.connections, 2);
  t.equal(c.timeout, 5000);
  t.equal(c.retryTimeout, 1000);
  t.equal(c.udpTimeout, 60000);
  t.equal(c.noUdp, false);
  const s = resolveConfig('server', { file: readConfigFile(join(compat, 'tws-rust-server.yaml'), 'server'), env: {}, flags: {} });
  t.same(s.listen, { host: '127.0.0.1', port: 5202 });
  t.equal(s.path, '/');
});

t.test('explicit flags override the file, the environment overrides the file', async (t) => {
  const file = readConfigFile(join(compat, 'tws-rust-client.yaml'), 'client');
  const c = resolveConfig('client', { file, env: { TWS_PASSWD: 'from-env' }, flags: { timeout: '7000', listen: '[::1]:9000' } });
  t.equal(c.timeout, 7000);
  t.same(c.listen, { host: '::1', port: 9000 });
  t.equal(c.passwd, 'from-env');
  t.equal(c.connections, 2, 'file value kept where no flag was given');
});

t.test('an unknown key is one error naming the key', async (t, dir = t.testdir({ 'c.yaml': 'listen: 127.0.0.1:1\nremtoe: x\n' })) => {
  t.throws(() => readConfigFile(join(dir, 'c.yaml'), 'client'), { code: 'TWS_ERR_CONFIG', message: /unknown key "remtoe"/ });
  // a client-only key in a server config is unknown there
  writeFileSync(join(dir, 's.yaml'), 'remote: 1.2.3.4:5\n');
  t.throws(() => readConfigFile(join(dir, 's.yaml'), 'server'), { message: /unknown key "remote" for tws server/ });
});

t.test('a bad value names its key or flag', async (t, dir = t.testdir({ 'c.yaml': 'timeout: soon\n' })) => {
  const file = readConfigFile(join(dir, 'c.yaml'), 'server');
  t.throws(() => resolveConfig('server', { file, fileName: 'c.yaml', env: {}, flags: { listen: '127.0.0.1:1', passwd: 'x' } }),
    { message: /config key "timeout" in c\.yaml: expected a whole number/ });
  t.throws(() => resolveConfig('client', { env: {}, flags: { listen: '127.0.0.1:1', server: 'http://x', remote: 'a:1', passwd: 'x' } }),
    { message: /flag -s\/--server: expected a ws:\/\/ or wss:\/\/ URL/ });
  t.throws(() => resolveConfig('client', { env: {}, flags: { listen: '1.2.3.4', server: 'ws://x', remote: 'a:1', passwd: 'x' } }),
    { message: /flag -l\/--listen: expected host:port/ });
  t.throws(() => resolveConfig('client', { env: {}, flags: { listen: '::1:80', server: 'ws://x', remote: 'a:1', passwd: 'x' } }),
    { message: /brackets/ });
  t.throws(() => resolveConfig('client', { env: {}, flags: { listen: '127.0.0.1:1', server: 'ws://x', remote: 'a:70000', passwd: 'x' } }),
    { message: /-r\/--remote: port 70000 is out of range/ });
});

t.test('a missing required option names both the flag and the key', async (t) => {
  const err = t.throws(() => resolveConfig('client', { env: {}, flags: { listen: '127.0.0.1:1', passwd: 'x' } })) as TwsError;
  t.match(err.message, /-s\/--server \(config key "server"\)/);
  t.match(err.message, /-r\/--remote \(config key "remote"\)/);
  t.throws(() => resolveConfig('server', { env: {}, flags: { listen: '127.0.0.1:1' } }), { message: /-p\/--passwd.*config key "passwd"/ });
});

t.test('the password can come from a file, never together with passwd', async (t, dir = t.testdir({ pw: 's3cret\n', empty: '' })) => {
  const s = resolveConfig('server', { env: {}, flags: { listen: '127.0.0.1:1', passwdFile: join(dir, 'pw') } });
  t.equal(s.passwd, 's3cret');
  t.throws(() => resolveConfig('server', { env: { TWS_PASSWD: 'x' }, flags: { listen: '127.0.0.1:1', passwdFile: join(dir, 'pw') } }),
    { message: /not both/ });
  t.throws(() => resolveConfig('server', { env: {}, flags: { listen: '127.0.0.1:1', passwdFile: join(dir, 'empty') } }), { message: /empty/ });
});

t.test('a secret value is never echoed back in an error', async (t) => {
  const err = t.throws(() => resolveConfig('server', { file: { passwd: ['hunter2'] }, env: {}, flags: { listen: '127.0.0.1:1' } })) as Error;
  t.notMatch(err.message, /hunter2/);
});

t.test("tws-rust's underscore flags and a leading -v are accepted", async (t) => {
  t.same(normalizeArgv(['-v', 'client', '--retry_timeout', '50', '--no_udp', '--udp_timeout=9']),
    ['client', '-v', '--retry-timeout', '50', '--no-udp', '--udp-timeout=9']);
  t.same(normalizeArgv(['-h', 'server']), ['server', '-h'], '-h before the subcommand: its help');
  t.same(normalizeArgv(['-v']), ['-V'], '-v alone: the version');
  t.same(normalizeArgv(['client', '-v', '-l', 'server:1']), ['client', '-v', '-l', 'server:1'], 'flags after the subcommand stay');
});

t.test('the shipped example configs load', async (t) => {
  const ex = join(__dirname, '..', '..', 'example');
  const s = resolveConfig('server', { file: readConfigFile(join(ex, 'server.yaml'), 'server'), env: {}, flags: {} });
  t.equal(s.connectTimeout, 10000);
  const c = resolveConfig('client', { file: readConfigFile(join(ex, 'client.yaml'), 'client'), env: {}, flags: {} });
  t.equal(c.remote, '127.0.0.1:22');
});

t.test('the tws-rust fixtures are byte-identical to the shared compat files', async (t) => {
  const shared = join(__dirname, '..', '..', '..', 'shared', 'compat');
  if (!existsSync(shared)) {
    t.comment('no ../shared/compat beside this clone; comparing the fixtures with themselves is pointless');
    t.ok(existsSync(join(compat, 'tws-rust-client.yaml')), 'fixtures present');
    return;
  }
  for (const f of ['tws-rust-client.yaml', 'tws-rust-server.yaml']) {
    t.same(readFileSync(join(compat, f)), readFileSync(join(shared, f)), f);
  }
});
