import t from 'tap';
import { join } from 'node:path';
import { readConfigFile, resolveConfig } from '../../src/config/load';
import { buildProgram } from '../../src/cli/program';

t.test('--legacy and YAML legacy: true, on both sides; off by default', async (t, dir = t.testdir({
  's.yaml': 'listen: 127.0.0.1:5202\npasswd: x\nlegacy: true\n',
  'c.yaml': 'listen: 127.0.0.1:5203\nserver: ws://127.0.0.1:5202\nremote: 127.0.0.1:22\npasswd: x\nlegacy: true\n',
})) => {
  t.equal(resolveConfig('server', { file: readConfigFile(join(dir, 's.yaml'), 'server'), env: {}, flags: {} }).legacy, true);
  t.equal(resolveConfig('client', { file: readConfigFile(join(dir, 'c.yaml'), 'client'), env: {}, flags: {} }).legacy, true);
  const plain = resolveConfig('server', { env: {}, flags: { listen: '127.0.0.1:1', passwd: 'x' } });
  t.equal(plain.legacy, false);
  t.equal(resolveConfig('server', { env: {}, flags: { listen: '127.0.0.1:1', passwd: 'x', legacy: true } }).legacy, true);
});

t.test('a --legacy client carries one -l/-r tunnel: the others are refused, naming them', async (t) => {
  const base = { listen: '127.0.0.1:1', server: 'ws://h/', remote: '127.0.0.1:22', passwd: 'x', legacy: true };
  t.throws(() => resolveConfig('client', { env: {}, flags: { ...base, tunnels: ['2222:db:22'], socks: '1080' } }),
    { code: 'TWS_ERR_CONFIG', message: /legacy \(--legacy\) carries one tunnel, -l with -r, as tws-rust does; drop -L\/--local, -D\/--socks/ });
  t.throws(() => resolveConfig('client', { env: {}, flags: { ...base, user: 'alice' } }), { message: /drop --user/ });
  t.throws(() => resolveConfig('client', { env: {}, flags: { ...base, stdio: 'h:22' } }), { message: /drop --stdio/ });
});

t.test('--help names --legacy on both subcommands, with an example', async (t) => {
  for (const sub of ['server', 'client']) {
    const cmd = buildProgram().commands.find((c) => c.name() === sub)!;
    const help = cmd.helpInformation();
    t.match(help, /--legacy/, `${sub} --help`);
  }
  const { serverExamples, clientExamples } = await import('../../src/cli/examples');
  t.match(serverExamples, /tws server .*--legacy/);
  t.match(clientExamples, /tws client .*--legacy/);
});
