import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, echoServer } from '../helpers/net';
import { CLI, PASSWD, runCli, startTunnel } from '../helpers/procs';
import { waitFor } from '../helpers/wait';

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
    '-t, --timeout', '--passwd-file', '--engine', '--log-level', '--config', '-v', '-L, --local <spec>']) {
    t.match(client.out, flag, `client --help shows ${flag}`);
  }
  t.match(optionHelp(client.out, '-L, --local <spec>'), /\[BIND:\]PORT:HOST:PORT\[\/udp\].*e\.g\. -L 2222:db\.internal:22/);
  t.match(client.out, /-L 2222:127\.0\.0\.1:22 -L \[::1\]:5432:db\.internal:5432 -L 5353:10\.0\.0\.53:53\/udp/, 'an example with -L');
  t.match(optionHelp(client.out, '-R, --reverse <spec>'), /\[BIND:\]PORT:HOST:PORT.*--allow-reverse.*e\.g\. -R 8080:127\.0\.0\.1:80/);
  t.match(client.out, /-R 8080:127\.0\.0\.1:80/, 'an example with -R');
  const server = await tws(['server', '--help']);
  t.match(server.out, /--path <path>/);
  t.match(optionHelp(server.out, '--allow-reverse <rule>'), /reverse tunnels.*e\.g\. 127\.0\.0\.1:8000-8999/);
  t.match(server.out, /--allow-reverse 127\.0\.0\.1:8000-8999/, 'an example with --allow-reverse');
  t.match(optionHelp(server.out, '-t, --timeout <ms>'), /default: 5000/);
});

/** One option's description in commander's help, its wrapped lines joined. */
function optionHelp(help: string, flag: string): string {
  const lines = help.split('\n');
  const start = lines.findIndex((l) => l.trimStart().startsWith(flag));
  if (start < 0) return '';
  const end = lines.findIndex((l, i) => i > start && /^\s{2}-/.test(l));
  return lines.slice(start, end < 0 ? undefined : end).join(' ').slice(lines[start]!.indexOf(flag) + flag.length).replace(/\s+/g, ' ').trim();
}

t.test("each role's --help describes -l, -t, --no-udp and --threads for that role only", async (t) => {
  const server = (await tws(['server', '--help'])).out;
  const client = (await tws(['client', '--help'])).out;
  const s = (flag: string): string => optionHelp(server, flag);
  const c = (flag: string): string => optionHelp(client, flag);
  t.match(s('-l, --listen <addr>'), /WebSocket/);
  t.notMatch(s('-l, --listen <addr>'), /client|local TCP/i);
  t.match(c('-l, --listen <addr>'), /local/);
  t.notMatch(c('-l, --listen <addr>'), /server|WebSocket/i);
  t.match(s('-t, --timeout <ms>'), /dead/);
  t.notMatch(s('-t, --timeout <ms>'), /client|waits for a session/i);
  t.match(c('-t, --timeout <ms>'), /waits for a session/);
  t.match(s('--no-udp'), /refuse UDP streams/);
  t.notMatch(s('--no-udp'), /client|listen/i);
  t.match(c('--no-udp'), /do not listen for UDP/);
  t.notMatch(c('--no-udp'), /server|refuse/i);
  t.notMatch(s('--threads <n>'), /-c\b/);
  t.notMatch(c('--threads <n>'), /many clients/);
});

t.test('-h or --help before the subcommand shows that subcommand\'s help', async (t) => {
  for (const [args, role] of [[['-h', 'server'], 'server'], [['--help', 'client'], 'client'], [['help', 'server'], 'server']] as const) {
    const r = await tws([...args]);
    t.equal(r.code, 0, args.join(' '));
    t.match(r.out, new RegExp(`^Usage: tws ${role} \\[options\\]`), `${args.join(' ')}: the ${role}'s usage`);
    t.match(r.out, /--listen/, `${args.join(' ')}: the ${role}'s flags`);
  }
});

t.test('help shows examples: plain, behind nginx, --tls-cert, --users with --allow', async (t) => {
  const top = (await tws(['--help'])).out;
  const server = (await tws(['server', '--help'])).out;
  const client = (await tws(['client', '--help'])).out;
  for (const [name, out] of [['tws --help', top], ['tws server --help', server]] as const) {
    t.match(out, /^ {2}(TWS_PASSWD=\S+ )?tws server -l \S+$/m, `${name}: a plain server`);
    t.match(out, /nginx[^\n]*\n {2}tws server -l 127\.0\.0\.1:\d+ /, `${name}: a server behind nginx`);
    t.match(out, /^ {2}tws server .*--tls-cert \S+ --tls-key \S+/m, `${name}: a server with its own TLS`);
    t.match(out, /^ {2}tws server .*--users \S+ .*--allow \S+/m, `${name}: users and allow rules`);
  }
  for (const [name, out] of [['tws --help', top], ['tws client --help', client]] as const) {
    t.match(out, /^ {2}(TWS_PASSWD=\S+ )?tws client -l \S+ -s ws:\/\/\S+ -r \S+/m, `${name}: a plain client`);
    t.match(out, /^ {2}.*tws client .*-s wss:\/\/\S+/m, `${name}: a client over wss://`);
  }
});

t.test('-v alone prints the version, as -V and --version do', async (t) => {
  const v = await tws(['-v']);
  t.equal(v.code, 0, v.err);
  t.match(v.out, /^tws-native \d+\.\d+\.\d+ \(engine: /);
  t.equal(v.out, (await tws(['--version'])).out);
});

t.test('--version names the engine TWS_ENGINE picks', async (t) => {
  const js = await tws(['--version'], { TWS_ENGINE: 'js' });
  t.equal(js.code, 0);
  t.match(js.out, /^tws-native \S+ \(engine: js[;,]/, 'TWS_ENGINE=js: the js engine');
  if (/engine: native/.test((await tws(['--version'], { TWS_ENGINE: '' })).out)) {
    t.match((await tws(['--version'], { TWS_ENGINE: 'native' })).out, /\(engine: native, napi \d+/, 'TWS_ENGINE=native: the native engine');
    t.match(js.out, /native napi \d+ available/, 'TWS_ENGINE=js still says native would load');
  }
  // No addon at all (TWS_NATIVE_ADDON names a build that is not there).
  const none = { TWS_NATIVE_ADDON: '/nonexistent/tws.node' };
  t.match((await tws(['--version'], { ...none, TWS_ENGINE: 'native' })).out, /\(engine: none; native unavailable: .*nonexistent/,
    'TWS_ENGINE=native without the addon: no engine, and why');
  t.match((await tws(['--version'], { ...none, TWS_ENGINE: 'js' })).out, /\(engine: js; native unavailable: /);
  const bad = await tws(['--version'], { TWS_ENGINE: 'turbo' });
  t.equal(bad.code, 0);
  t.match(bad.out, /TWS_ENGINE must be auto, js or native/);
});

t.test('--version names the engine', async (t) => {
  const v = await tws(['--version'], { TWS_ENGINE: '' });
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
  const inUse = await echoServer();
  const busy = await tws(['server', '-l', inUse.addr, '-p', 'x']);
  await inUse.close();
  t.equal(busy.code, 1);
  t.match(busy.err, /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
});

t.test('--engine native runs the native engine where the addon loads, and is one error line where it does not', async (t) => {
  const args = ['server', '-l', '127.0.0.1:0', '-p', 'x', '--engine', 'native'];
  const broken = await tws(args, { TWS_NATIVE_ADDON: join(t.testdir({}), 'missing.node') });
  t.equal(broken.code, 1, 'no addon: exit 1');
  t.match(broken.err, /^tws: error: the native engine is not available: .*missing\.node.*; use --engine js or auto/);
  t.equal(broken.err.trim().split('\n').length, 1, 'in one line');
  if (/engine: js/.test((await tws(['--version'])).out)) {
    t.equal((await tws(args)).code, 1, 'this build has no native engine: exit 1');
  } else {
    const server = await runCli(args);
    t.teardown(() => server.stop('SIGKILL'));
    t.match(server.logs(), /listening on 127\.0\.0\.1:\d+ path \/ \(engine native\)/, 'the server runs the native engine');
  }
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
  t.ok(await waitFor(() => got === 'before '), 'the stream is open end to end');
  const exited = tun.client.stop('SIGTERM');
  await tun.client.waitLog(/SIGTERM: shutting down/);
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
