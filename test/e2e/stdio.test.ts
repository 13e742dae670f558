/**
 * `tws client --stdio HOST:PORT` (ssh's ProxyCommand): one stream between
 * the process's stdin/stdout and the target, half-close both ways, exit 0 on
 * a clean end, else 1 with one line on stderr; nothing but payload on stdout.
 */
import t from 'tap';
import type { Test } from 'tap';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { echoServer, freePort, sha256, tcpServer } from '../helpers/net';
import { CLI, engines, PASSWD, Proc, runCli } from '../helpers/procs';
import { needs } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

const MB = 1024 * 1024;

interface Ended {
  code: number | null;
  out: Buffer;
  outHash: string;
  outBytes: number;
  err: string;
  ms: number;
}

/** The stdio client's argv. */
function clientArgs(server: Proc, target: string, engine: string, extra: string[] = []): string[] {
  return [CLI, 'client', '--stdio', target, '-s', `ws://127.0.0.1:${server.port}/`, '--engine', engine, ...extra];
}

/**
 * Runs the stdio client to its exit. `pipes`: stdin and stdout are real pipes
 * (through cat, as ssh gives them), else the socketpairs spawn makes.
 */
function spawnClient(argv: string[], pipes = false): ChildProcess {
  const env = { ...process.env, TWS_PASSWD: PASSWD };
  if (!pipes) return spawn(process.execPath, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  // Two FIFOs and a cat on each; exec, so that no copy of the client's stdout stays open anywhere (bash's
  // process substitution would leave one in the client, and its reader would never see EOF).
  const dir = mkdtempSync(join(tmpdir(), 'tws-stdio-'));
  execFileSync('mkfifo', [join(dir, 'in'), join(dir, 'out')]);
  const child = spawn('bash', ['-c', 'cat <&0 > "$D/in" & cat < "$D/out" & exec "$@" < "$D/in" > "$D/out"', '_', process.execPath, ...argv],
    { env: { ...env, D: dir }, stdio: ['pipe', 'pipe', 'pipe'] });
  child.on('close', () => rmSync(dir, { recursive: true, force: true }));
  return child;
}

/** Feeds `input` and ends stdin (null: ends it at once; undefined: leaves it to the caller), and collects what comes out until the process exits. */
function runToEnd(child: ChildProcess, input: Buffer | null | undefined, timeoutMs = 60_000): Promise<Ended> {
  const started = Date.now();
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  let outBytes = 0;
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    hash.update(d);
    outBytes += d.length;
    if (outBytes <= MB) kept.push(d);
  });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  child.stdin?.on('error', () => undefined);  // a client that failed stops reading
  if (input) Readable.from(chunks(input)).pipe(child.stdin!);
  else if (input === null) child.stdin?.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out: Buffer.concat(kept), outHash: hash.digest('hex'), outBytes, err, ms: Date.now() - started });
    });
  });
}

function* chunks(buf: Buffer, size = 256 * 1024): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/**
 * Runs the stdio client (argv after the node binary) from python3 with its
 * stdin and stdout as `kind` ('pipes'; 'sockets': a socketpair each; 'one
 * socket': fds 0 and 1 one socket, as socat EXEC: and inetd give them),
 * sends `input` and its EOF, and reports, once it exited, whether the
 * descriptions it shared with us were left non-blocking, what came back,
 * and (one socket) whether the target's FIN arrived as EOF while the
 * client was still running.
 */
const SHARED_FDS_PY = `
import fcntl, json, os, socket, subprocess, sys, time
kind, data, argv = sys.argv[1], sys.argv[2].encode(), sys.argv[3:]
nb = lambda fd: bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK)
# The client runs as from a shell: without the preload tap puts into NODE_OPTIONS, which uses process.stdout (and so makes fd 1 non-blocking).
os.environ.pop('NODE_OPTIONS', None)
out, eof_while_running = b'', None
if kind == 'pipes':
    r0, w0 = os.pipe(); r1, w1 = os.pipe()
    p = subprocess.Popen(argv, stdin=r0, stdout=w1)
    os.write(w0, data); os.close(w0)
    code = p.wait(20)
    mine = [r0, w1]
    os.set_blocking(r1, False)
    try: out = os.read(r1, 65536)
    except BlockingIOError: pass
elif kind == 'sockets':
    a, b = socket.socketpair(); c, d = socket.socketpair()
    p = subprocess.Popen(argv, stdin=b.fileno(), stdout=d.fileno())
    a.sendall(data); a.shutdown(socket.SHUT_WR)
    code = p.wait(20)
    mine = [b.fileno(), d.fileno()]
    c.setblocking(False)
    try: out = c.recv(65536)
    except BlockingIOError: pass
else:
    a, b = socket.socketpair()
    p = subprocess.Popen(argv, stdin=b.fileno(), stdout=b.fileno())
    a.sendall(data)
    a.settimeout(10)
    while True:
        got = a.recv(65536)
        if not got: break
        out += got
    eof_while_running = p.poll() is None
    a.shutdown(socket.SHUT_WR)
    code = p.wait(20)
    mine = [b.fileno()]
print(json.dumps({'code': code, 'out': out.decode(), 'nonblocking': [nb(fd) for fd in mine], 'eofWhileRunning': eof_while_running}))
`;

async function startServer(t: Test, engine: string, extra: string[] = []): Promise<Proc> {
  const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, ...extra]);
  t.teardown(() => server.stop('SIGKILL'));
  return server;
}

/** A stdio client to an echo server with its stream open and stdin left open: `ended` is its run to the end. */
async function liveStream(t: Test, engine: string): Promise<{ server: Proc; child: ChildProcess; ended: Promise<Ended> }> {
  const echo = await echoServer();
  t.teardown(() => echo.close());
  const server = await startServer(t, engine);
  const child = spawnClient(clientArgs(server, echo.addr, engine));
  t.teardown(() => child.kill('SIGKILL'));
  const ended = runToEnd(child, undefined, 20_000);
  child.stdin!.write('still talking');  // stdin stays open: the stream is live
  await server.waitLog(/stream#1 open/);
  return { server, child, ended };
}

const lines = (s: string): string[] => s.split('\n').filter(Boolean);

const pairs: [string, string][] = engines().map((e) => [e, e]);
if (engines().length > 1) pairs.push(['js', 'native'], ['native', 'js']);

for (const [clientEngine, serverEngine] of pairs) {
  const name = clientEngine === serverEngine ? clientEngine : `client ${clientEngine}, server ${serverEngine}`;

  t.test(`[${name}] 100 MB both ways through stdin/stdout pipes, sha256 intact, exit 0, stderr quiet`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const server = await startServer(t, serverEngine);
    const data = randomBytes(100 * MB);
    const r = await runToEnd(spawnClient(clientArgs(server, echo.addr, clientEngine), true), data, 120_000);
    t.equal(r.code, 0, `exit 0 (stderr: ${r.err})`);
    t.equal(r.outBytes, data.length, 'every byte came back');
    t.equal(r.outHash, sha256(data), 'sha256 intact');
    t.equal(r.err, '', 'nothing on stderr at the default level');
    t.comment(`100 MB each way in ${r.ms} ms`);
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] stdin EOF is a FIN: the target sees it while its reply still flows back, then exit 0`, async (t) => {
    // Answers only after the client's EOF, slowly, in pieces, then ends.
    const target = await tcpServer((s) => {
      let got = 0;
      s.on('data', (d: Buffer) => { got += d.length; });
      s.on('end', () => {
        let n = 0;
        const tick = setInterval(() => {
          s.write(`after EOF ${n} (got ${got})\n`);
          if (++n === 5) {
            clearInterval(tick);
            s.end();
          }
        }, 20);
      });
    });
    t.teardown(() => target.close());
    const server = await startServer(t, engine);
    const r = await runToEnd(spawnClient(clientArgs(server, target.addr, engine)), Buffer.from('hello target'));
    t.equal(r.code, 0, `exit 0 (stderr: ${r.err})`);
    t.equal(r.out.toString(), [0, 1, 2, 3, 4].map((n) => `after EOF ${n} (got 12)\n`).join(''), 'the whole reply, sent after the target saw EOF');
  });

  t.test(`[${engine}] the target's FIN closes stdout while stdin stays open; exit once stdin ends too`, async (t) => {
    let heard = '';
    let heardEnd: () => void = () => undefined;
    const target = await tcpServer((s) => {
      s.end('banner\n');  // half-close: still reading
      s.on('data', (d: Buffer) => { heard += d.toString(); });
      s.on('end', () => heardEnd());
    });
    t.teardown(() => target.close());
    const server = await startServer(t, engine);
    for (const pipes of [false, true]) {
      heard = '';
      const ended = new Promise<void>((resolve) => { heardEnd = resolve; });
      const child = spawnClient(clientArgs(server, target.addr, engine), pipes);
      t.teardown(() => child.kill('SIGKILL'));
      let out = '';
      let outEnded = false;
      child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
      child.stdout!.on('end', () => { outEnded = true; });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      t.ok(await waitFor(() => outEnded), `stdout ended (${pipes ? 'pipes' : 'sockets'})`);
      t.equal(out, 'banner\n', 'after the banner');
      t.equal(child.exitCode, null, 'still running: stdin is still open');
      child.stdin!.end('late words');
      await ended;
      t.equal(heard, 'late words', 'what stdin said after stdout closed reached the target');
      t.equal(await exited, 0, 'exit 0 once both directions are done');
    }
  });

  t.test(`[${engine}] the caller's stdin/stdout are left blocking, and a FIN goes out when they are one socket`, { skip: needs('python3') }, async (t) => {
    // The target answers once it has the whole 'hi', and FINs: the client's FIN may come later (one socket) or earlier.
    const target = await tcpServer((s) => {
      let heard = '';
      s.on('data', (d: Buffer) => {
        heard += d.toString();
        if (heard === 'hi') s.end(`got ${heard}`);
      });
    });
    t.teardown(() => target.close());
    const server = await startServer(t, engine);
    for (const kind of ['pipes', 'sockets', 'one socket']) {
      const argv = [process.execPath, ...clientArgs(server, target.addr, engine)];
      const py = spawn('python3', ['-c', SHARED_FDS_PY, kind, 'hi', ...argv], { env: { ...process.env, TWS_PASSWD: PASSWD }, stdio: ['ignore', 'pipe', 'inherit'] });
      t.teardown(() => py.kill('SIGKILL'));
      let report = '';
      py.stdout.on('data', (d: Buffer) => { report += d.toString(); });
      await new Promise((resolve) => py.on('close', resolve));
      const r = JSON.parse(report) as { code: number; out: string; nonblocking: boolean[]; eofWhileRunning: boolean | null };
      t.equal(r.code, 0, `${kind}: exit 0`);
      t.equal(r.out, 'got hi', `${kind}: the answer came back`);
      t.same(r.nonblocking, r.nonblocking.map(() => false), `${kind}: the shared descriptions are blocking as they were`);
      if (kind === 'one socket') t.equal(r.eofWhileRunning, true, "one socket: the target's FIN arrived as EOF while stdin was still open");
    }
  });

  t.test(`[${engine}] a target --allow refuses: exit 1, one line on stderr, nothing on stdout`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const server = await startServer(t, engine, ['--allow', '10.0.0.0/8:*']);
    const r = await runToEnd(spawnClient(clientArgs(server, echo.addr, engine)), Buffer.from('let me in'), 20_000);
    t.equal(r.code, 1, 'exit 1');
    t.equal(lines(r.err).length, 1, `one line: ${r.err}`);
    t.match(r.err, /^tws: stream to 127\.0\.0\.1:\d+ refused: .*not allowed/, 'it says the target was refused');
    t.equal(r.outBytes, 0, 'nothing on stdout');
  });

  t.test(`[${engine}] the server unreachable: exit 1 within the timeout, one line`, async (t) => {
    const port = await freePort();  // nothing listens there
    const argv = [CLI, 'client', '--stdio', '127.0.0.1:9', '-s', `ws://127.0.0.1:${port}/`, '--engine', engine, '-t', '1500'];
    const r = await runToEnd(spawnClient(argv), Buffer.from('x'), 20_000);
    t.equal(r.code, 1, 'exit 1');
    t.ok(r.ms < 6000, `gave up within the timeout and start-up (${r.ms} ms)`);
    t.equal(lines(r.err).length, 1, `one line: ${r.err}`);
    t.match(r.err, /^tws: no session to 127\.0\.0\.1:\d+ within 1500 ms: .*ECONNREFUSED/, 'it says why');
    t.equal(r.outBytes, 0, 'nothing on stdout');
  });

  t.test(`[${engine}] SIGHUP (ssh's goodbye to its ProxyCommand) mid-stream: the session closes cleanly, exit 129`, async (t) => {
    const { server, child, ended } = await liveStream(t, engine);
    child.kill('SIGHUP');
    const r = await ended;
    t.equal(r.code, 129, 'exit 128 + SIGHUP');
    t.equal(r.err, '', 'nothing on stderr at the default level');
    await server.waitLog(/session#\d+ down/);
    t.notMatch(server.logs(), /1006|session lost/, 'the server saw a close handshake, not a lost connection');
  });

  t.test(`[${engine}] the server killed mid-stream: exit 1 with exactly one line on stderr`, async (t) => {
    const { server, ended } = await liveStream(t, engine);
    await server.stop('SIGKILL');
    const r = await ended;
    t.equal(r.code, 1, 'exit 1');
    t.equal(lines(r.err).length, 1, `one line: ${r.err}`);
    t.match(r.err, /^tws: stream to 127\.0\.0\.1:\d+ failed: session lost/, 'it says the session was lost');
  });

  t.test(`[${engine}] --log-level info: log lines on stderr name the tunnel (stdio), stdout is payload only`, async (t) => {
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const server = await startServer(t, engine);
    const data = randomBytes(MB / 2);
    const r = await runToEnd(spawnClient(clientArgs(server, echo.addr, engine, ['--log-level', 'info'])), data);
    t.equal(r.code, 0, 'exit 0');
    t.equal(sha256(r.out), sha256(data), 'stdout is exactly the payload');
    t.match(r.err, /session#\d+ stream#1 open → 127\.0\.0\.1:\d+ \(stdio\)/, 'the open line names the tunnel');
    t.match(r.err, /stream#1 closed \(fin\) → 127\.0\.0\.1:\d+ \(stdio\) in=524288 out=524288/, 'so does the close line');
  });
}

t.test('stdin a regular file: auto carries it through Node streams (js engine), native refuses in one line', { skip: !engines().includes('native') && 'needs the native engine' }, async (t) => {
  const echo = await echoServer();
  t.teardown(() => echo.close());
  const server = await startServer(t, 'native');
  const dir = mkdtempSync(join(tmpdir(), 'tws-stdio-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const data = randomBytes(4 * MB);
  writeFileSync(join(dir, 'in'), data);
  const fromFile = (engine: string): ChildProcess => {
    const fd = openSync(join(dir, 'in'), 'r');
    const child = spawn(process.execPath, clientArgs(server, echo.addr, engine), { env: { ...process.env, TWS_PASSWD: PASSWD }, stdio: [fd, 'pipe', 'pipe'] });
    closeSync(fd);
    return child;
  };
  const auto = await runToEnd(fromFile('auto'), undefined);
  t.equal(auto.code, 0, `auto: exit 0 (stderr: ${auto.err})`);
  t.equal(auto.outHash, sha256(data), 'auto: the file came back intact');
  const native = await runToEnd(fromFile('native'), undefined);
  t.equal(native.code, 1, 'native: exit 1');
  t.equal(lines(native.err).length, 1, `native: one line: ${native.err}`);
  t.match(native.err, /needs stdin and stdout to be pipes or sockets/, 'native: says why');
});
