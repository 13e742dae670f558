/**
 * The client's HTTP CONNECT listener (--http-connect, issue 15 item 3) with a
 * real HTTP proxy client, curl: a large body through the tunnel (sha256),
 * and the statuses a refusal maps to, on both engines and across them.
 */
import t from 'tap';
import type { Test } from 'tap';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createClient, createServer } from '../../src/api';
import { connect, echoServer, freePort, howItEnds, sha256, tcpServer } from '../helpers/net';
import { CLI, engines, PASSWD, Proc, runCli } from '../helpers/procs';
import { fileNeeds, toolEnv } from '../helpers/tools';

fileNeeds(t, 'curl');

const BODY = randomBytes(8 * 1024 * 1024);

/** A local HTTP server with one large body at /big. */
async function httpTarget(t: Test): Promise<number> {
  const server: Server = createHttpServer((req, res) => {
    if (req.url !== '/big') return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Length': BODY.length });
    res.end(BODY);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return (server.address() as AddressInfo).port;
}

/** Runs curl; resolves with its exit code, stdout (bytes) and the statuses -w printed (CONNECT's, then the request's). */
function curl(args: string[]): Promise<{ code: number; out: Buffer; w: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '20', '-w', '%{stderr}\nstatus: %{http_connect} %{http_code}', ...args],
      { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, env: toolEnv() }, (err, stdout, stderr) => {
        const w = /\nstatus: (\d+ \d+)/.exec(stderr.toString())?.[1] ?? stderr.toString();
        resolve({ code: (err as { code?: number } | null)?.code ?? 0, out: stdout, w });
      });
  });
}

/** A server and a client with only an HTTP CONNECT listener; resolves with the client's proxy port. */
async function proxyPair(t: Test, serverEngine: string, clientEngine: string, serverArgs: string[] = [], clientArgs: string[] = []):
Promise<{ server: Proc; client: Proc; proxy: string }> {
  const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', serverEngine, ...serverArgs]);
  t.teardown(() => server.stop('SIGKILL'));
  const client = await runCli(['client', '-s', `ws://127.0.0.1:${server.port}/`, '--http-connect', '127.0.0.1:0', '-c', '1',
    '--engine', clientEngine, ...clientArgs]);
  t.teardown(() => client.stop('SIGKILL'));
  await client.waitLog(/listening on 127\.0\.0\.1:\d+ → \* \(http-connect\)/);
  await client.waitLog(/up →/);
  return { server, client, proxy: `http://127.0.0.1:${client.port}` };
}

/** Sends `bytes` on a raw connection to the proxy and collects what comes back until it ends. */
async function raw(port: number, bytes: Buffer | string, endAfter = false): Promise<{ how: string; data: Buffer }> {
  const s: Socket = connect(port, '127.0.0.1');
  const ended = howItEnds(s);
  s.write(bytes);
  if (endAfter) s.end();
  return ended;
}

async function bigBody(t: Test, proxy: string, target: number): Promise<void> {
  const got = await curl(['--proxytunnel', '--proxy', proxy, `http://127.0.0.1:${target}/big`]);
  t.equal(got.w, '200 200', 'CONNECT answered 200, then the target\'s 200');
  t.equal(got.out.length, BODY.length, 'the whole body came through');
  t.equal(sha256(got.out), sha256(BODY), 'sha256 matches');
}

for (const engine of engines()) {
  t.test(`[${engine}] curl through --http-connect: a large body, and 403/502/405/400/408 as the issue maps them`, async (t) => {
    const target = await httpTarget(t);
    const closedPort = await freePort();  // nothing listens there
    const echo = await echoServer();
    t.teardown(() => echo.close());
    const { client, proxy } = await proxyPair(t, engine, engine,
      ['--allow', `127.0.0.1:${target}`, '--allow', `127.0.0.1:${closedPort}`, '--allow', `127.0.0.1:${echo.port}`], ['-t', '2000']);

    await bigBody(t, proxy, target);
    t.match(client.logs(), /stream#\d+ open from 127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+ \(http-connect\)/, 'the open line names the listener');
    t.match(await client.waitLog(/stream#\d+ closed \(fin\) → 127\.0\.0\.1:\d+ \(http-connect\) in=\d+/), /in=\d{7,}/, 'so does the close line');

    const denied = await curl(['--proxytunnel', '--proxy', proxy, `http://127.0.0.2:${target}/big`]);
    t.equal(denied.w.split(' ')[0], '403', 'a target the server\'s --allow refuses: 403');
    t.not(denied.code, 0, 'and curl fails');

    const refused = await curl(['--proxytunnel', '--proxy', proxy, `http://127.0.0.1:${closedPort}/`]);
    t.equal(refused.w.split(' ')[0], '502', 'a closed port: 502');

    const get = await curl(['--proxy', proxy, `http://127.0.0.1:${target}/big`]);
    t.equal(get.w, '000 405', 'a plain GET through the proxy: 405');
    t.match(get.out.toString(), /only tunnels/, 'with a short body saying why');

    const port = Number(new URL(proxy).port);
    const big = await raw(port, `CONNECT 127.0.0.1:${target} HTTP/1.1\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`);
    t.match(big.data.toString(), /^HTTP\/1\.1 400 Bad Request\r\n/, 'a head over 8 KiB: 400');
    t.equal(big.how, 'end', 'then a FIN');

    const slow = await raw(port, 'CONNECT 127.0.0.1:1 HTTP/1.1\r\n');
    t.match(slow.data.toString(), /^HTTP\/1\.1 408 Request Timeout\r\n/, 'a head not complete within --timeout: 408');

    // Bytes sent right behind the head (before the 200) reach the target first.
    const piped = await raw(port, `CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: x\r\n\r\nping\n`, true);
    t.equal(piped.data.toString(), 'HTTP/1.1 200 Connection established\r\n\r\nping\n', 'pipelined bytes go to the stream after the 200');
    t.notMatch(client.logs(), /X-Big|aaaaaaaa/, 'header values are not logged');
  });

  t.test(`[${engine}] --max-streams applies to CONNECT streams: one more is answered 502`, async (t) => {
    const holder = await tcpServer(() => undefined);  // accepts and keeps the stream open
    t.teardown(() => holder.close());
    const { proxy } = await proxyPair(t, engine, engine, ['--max-streams', '1']);
    const port = Number(new URL(proxy).port);
    const first = connect(port, '127.0.0.1');
    t.teardown(() => first.destroy());
    const ok = await new Promise<string>((resolve) => {
      first.once('data', (d: Buffer) => resolve(d.toString()));
      first.write(`CONNECT ${holder.addr} HTTP/1.1\r\n\r\n`);
    });
    t.match(ok, /^HTTP\/1\.1 200 /, 'the first stream opens');
    const second = await curl(['--proxytunnel', '--proxy', proxy, `http://${holder.addr}/`]);
    t.equal(second.w.split(' ')[0], '502', 'the second is refused by the server\'s limit: 502');
    const third = await raw(port, `CONNECT ${holder.addr} HTTP/1.1\r\n\r\n`);
    t.match(third.data.toString(), /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*too many streams/, 'saying why');
  });

  t.test(`[${engine}] the API: createClient({ httpConnect }) alone is a client; a non-loopback bind is a config error`, async (t) => {
    const target = await httpTarget(t);
    const s = await createServer({ listen: '127.0.0.1:0', passwd: 'pw', engine: engine as 'js' | 'native' });
    t.teardown(() => s.shutdown(0));
    const c = await createClient({ server: `ws://127.0.0.1:${s.address.port}/`, passwd: 'pw', engine: engine as 'js' | 'native', connections: 1,
      httpConnect: '127.0.0.1:0' });
    t.teardown(() => c.shutdown(0));
    t.same(c.tunnels.map((x) => x.name), ['http-connect']);
    await bigBody(t, `http://127.0.0.1:${c.address.port}`, target);
    await t.rejects(createClient({ server: 'ws://127.0.0.1:1/', passwd: 'pw', engine: 'js', httpConnect: '[::]:0' }),
      { code: 'TWS_ERR_CONFIG', message: /refusing to listen on \[::\]:0/ });
  });

  t.test(`[${engine}] --http-connect on a non-loopback address is refused at start`, async (t) => {
    const p = spawn(process.execPath, [CLI, 'client', '-s', 'ws://127.0.0.1:1/', '--http-connect', '0.0.0.0:0', '--engine', engine],
      { env: { ...process.env, TWS_PASSWD: PASSWD }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    const code = await new Promise<number | null>((r) => p.on('exit', r));
    clearTimeout(timer);
    t.not(code, 0, 'the client exits with an error');
    t.match(err, /--http-connect: refusing to listen on 0\.0\.0\.0:0: .*bind 127\.0\.0\.1/, 'one line saying why and what to do');
  });
}

const [a, b] = ['native', 'js'];
if (engines().includes(a!) && engines().includes(b!)) {
  for (const [serverEngine, clientEngine] of [[a!, b!], [b!, a!]]) {
    t.test(`${clientEngine} client ↔ ${serverEngine} server: curl through --http-connect, sha256 of a large body`, async (t) => {
      const target = await httpTarget(t);
      const { proxy } = await proxyPair(t, serverEngine!, clientEngine!);
      await bigBody(t, proxy, target);
      const refused = await curl(['--proxytunnel', '--proxy', proxy, 'http://127.0.0.1:1/']);
      t.equal(refused.w.split(' ')[0], '502', 'a closed port: 502 (the RESET reason reads the same from either server)');
      // .invalid is a reserved name: its lookup fails at once.
      const unknown = await raw(Number(new URL(proxy).port), 'CONNECT nope.invalid:80 HTTP/1.1\r\n\r\n');
      t.match(unknown.data.toString(), /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*cannot resolve the target name/, 'a name not found: 502, saying so');
    });
  }
}
