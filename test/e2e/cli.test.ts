import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, echoServer, sleep } from '../helpers/net';
import { CLI, PASSWD, runCli, startTunnel } from '../helpers/procs';

function tws(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, TWS_PASSWD: '', ...env }, timeout: 10_000 }, (error, out, err) => {
      resolve({ code: error ? (error as unknown as { code: number }).code : 0, out, err });
    });
  });
}

t.test('--help explains both modes and their flags', async (t) => {
  const top = await tws(['--help']);
  t.equal(top.code, 0);
  t.match(top.out, /server/);
  t.match(top.out, /client/);
  const client = await tws(['client', '--help']);
  for (const flag of ['-l, --listen', '-s, --server', '-r, --remote', '-p, --passwd', '-c, --connections', '-e, --retry-timeout',
    '-t, --timeout', '--passwd-file', '--engine', '--log-level', '--config', '-v']) {
    t.match(client.out, flag, `client --help shows ${flag}`);
  }
  const server = await tws(['server', '--help']);
  t.match(server.out, /--path <path>/);
  t.match(server.out, /default: 5000/);
});

t.test('--version names the engine', async (t) => {
  const v = await tws(['--version']);
  t.equal(v.code, 0);
  t.match(v.out, /^tws-native \d+\.\d+\.\d+ \(engine: (js|native)/);
});

t.test('usage and config errors are one line and exit 1', async (t) => {
  const missing = await tws(['client', '-l', '127.0.0.1:0']);
  t.equal(missing.code, 1);
  t.match(missing.err, /^tws: error: missing required options: -s\/--server \(config key "server"\)/);
  t.equal(missing.err.trim().split('\n').length, 1);
  const badFile = await tws(['server', '--config', '/nonexistent.yaml']);
  t.match(badFile.err, /cannot read config file \/nonexistent\.yaml: ENOENT/);
  const native = await tws(['server', '-l', '127.0.0.1:0', '-p', 'x', '--engine', 'native']);
  if (/engine: js/.test((await tws(['--version'])).out)) {
    t.equal(native.code, 1);
    t.match(native.err, /native engine is not available/);
  } else {
    t.pass('native engine available in this build');
  }
  const inUse = await echoServer();
  const busy = await tws(['server', '-l', inUse.addr, '-p', 'x']);
  await inUse.close();
  t.equal(busy.code, 1);
  t.match(busy.err, /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
});

t.test("tws-rust's server.yaml starts a server, with a flag overriding its listen address", async (t) => {
  const yaml = join(__dirname, '..', 'fixtures', 'tws-rust', 'tws-rust-server.yaml');
  const server = await runCli(['server', '--config', yaml, '-l', '127.0.0.1:0'], { TWS_PASSWD: '' });
  t.teardown(() => server.stop('SIGKILL'));
  t.match(server.logs(), /listening on 127\.0\.0\.1:\d+ path \//);
});

t.test('a password given with -p is not visible in the process arguments or logs', async (t) => {
  const echo = await echoServer();
  const tun = await startTunnel({ engine: 'js', target: echo.addr, serverArgs: ['-p', PASSWD], clientArgs: ['-p', PASSWD, '-v'], env: { TWS_PASSWD: '' } });
  t.teardown(async () => { await tun.stop(); await echo.close(); });
  for (const p of [tun.server, tun.client]) {
    const cmdline = readFileSync(`/proc/${p.proc.pid}/cmdline`, 'utf8');
    t.notMatch(cmdline, PASSWD, 'not in /proc/PID/cmdline');
    t.match(cmdline, /^tws (server|client)/);
    t.notMatch(p.logs(), PASSWD, 'not in the logs, even at debug');
  }
});

t.test('the client drains open streams on SIGTERM and exits 0', async (t) => {
  const echo = await echoServer();
  const tun = await startTunnel({ engine: 'js', target: echo.addr, clientArgs: ['--drain-timeout', '5000'] });
  t.teardown(async () => { await tun.stop(); await echo.close(); });
  const s = connect({ port: tun.port, host: '127.0.0.1', allowHalfOpen: true });
  let got = '';
  s.on('data', (c: Buffer) => { got += c.toString(); });
  s.write('before ');
  await sleep(200);
  const exited = tun.client.stop('SIGTERM');
  await sleep(300);
  s.end('after');
  await new Promise<void>((r) => s.on('end', () => r()));
  t.equal(got, 'before after', 'the stream finished during the drain');
  t.equal(await exited, 0);
  // new connections are no longer accepted
  const refused = await new Promise<string>((r) => { const c = connect({ port: tun.port, host: '127.0.0.1' }); c.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? '')); c.on('connect', () => { c.destroy(); r('connected'); }); });
  t.equal(refused, 'ECONNREFUSED');
});

t.test('a server URL that is wrong only in its port names the port', async (t) => {
  const r = await tws(['client', '-l', '127.0.0.1:0', '-s', 'ws://127.0.0.1:99999/', '-r', '127.0.0.1:9', '-p', 'x']);
  t.equal(r.code, 1);
  t.match(r.err, /^tws: error: flag -s\/--server: port 99999 is out of range \(1-65535\) in "ws:\/\/127\.0\.0\.1:99999\/"/);
  const bad = await tws(['client', '-l', '127.0.0.1:0', '-s', 'http://127.0.0.1:80/', '-r', '127.0.0.1:9', '-p', 'x']);
  t.match(bad.err, /expected a ws:\/\/ or wss:\/\/ URL/, 'a wrong scheme is still called what it is');
});
