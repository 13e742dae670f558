import t from 'tap';
import { randomBytes } from 'node:crypto';
import { makeCa, makeCert } from '../../bench/certs';
import { connectProxy } from '../helpers/connect-proxy';
import { echoServer, roundTrip, sha256, sleep, tcpServer } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';
import { needs } from '../helpers/tools';

const PROXY_PASS = 'proxy-pass-DO-NOT-LOG';

function client(engine: string, url: string, target: string, extra: string[], env: NodeJS.ProcessEnv = {}) {
  return runCli(['client', '-l', '127.0.0.1:0', '-s', url, '-r', target, '--engine', engine, '-c', '1', '--retry-timeout', '100', ...extra], env);
}

for (const engine of engines()) {
  t.test(`[${engine}] --proxy with credentials: ws:// through CONNECT, data intact, password never logged`, async (t) => {
    const echo = await echoServer();
    const proxy = await connectProxy({ user: 'alice', pass: PROXY_PASS });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    const c = await client(engine, `ws://127.0.0.1:${server.port}/`, echo.addr, ['--proxy', `http://alice:${PROXY_PASS}@127.0.0.1:${proxy.port}`]);
    t.teardown(async () => { await c.stop('SIGKILL'); await server.stop('SIGKILL'); await proxy.close(); await echo.close(); });
    await c.waitLog(/up → ws:/);
    const data = randomBytes(2_000_000);
    t.equal(sha256(await roundTrip(c.port, data)), sha256(data), '2 MB intact');
    t.same(proxy.requests.map((r) => r.target), [`127.0.0.1:${server.port}`], 'one CONNECT, to the server');
    t.match(c.logs(), new RegExp(`through proxy http://127\\.0\\.0\\.1:${proxy.port}`));
    t.notMatch(c.logs(), new RegExp(PROXY_PASS), 'proxy password not in the logs');
  });

  t.test(`[${engine}] HTTPS_PROXY carries wss:// (TLS end to end); NO_PROXY bypasses it`, { skip: needs('openssl') }, async (t) => {
    const dir = t.testdir({});
    const ca = makeCa(dir, 'proxy-test-ca');
    const leaf = makeCert(dir, ca, 'leaf', ['localhost', '127.0.0.1']);
    const echo = await echoServer();
    const proxy = await connectProxy();
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--tls-cert', leaf.cert, '--tls-key', leaf.key]);
    const proxied = await client(engine, `wss://localhost:${server.port}/`, echo.addr, ['--ca', ca.cert], { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` });
    t.teardown(async () => { await proxied.stop('SIGKILL'); await server.stop('SIGKILL'); await proxy.close(); await echo.close(); });
    await proxied.waitLog(/up → wss:/);
    const data = randomBytes(500_000);
    t.equal(sha256(await roundTrip(proxied.port, data)), sha256(data), 'intact through proxy + TLS');
    t.same(proxy.requests.map((r) => r.target), [`localhost:${server.port}`]);
    const direct = await client(engine, `wss://localhost:${server.port}/`, echo.addr, ['--ca', ca.cert],
      { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`, NO_PROXY: 'example.com,localhost' });
    t.teardown(() => direct.stop('SIGKILL'));
    await direct.waitLog(/up → wss:/);
    t.equal(proxy.requests.length, 1, 'NO_PROXY: the proxy saw no second CONNECT');
  });

  t.test(`[${engine}] a proxy that refuses is one clear error, and the client keeps retrying`, async (t) => {
    const proxy = await connectProxy({ user: 'alice', pass: 'right' });
    const c = await client(engine, 'ws://127.0.0.1:9/', '127.0.0.1:9', ['--proxy', `http://alice:wrong@127.0.0.1:${proxy.port}`]);
    t.teardown(async () => { await c.stop('SIGKILL'); await proxy.close(); });
    const line = await c.waitLog(/cannot connect to .*retrying in \d+ ms/);
    t.match(line, new RegExp(`proxy http://127\\.0\\.0\\.1:${proxy.port} refused CONNECT 127\\.0\\.0\\.1:9: HTTP 407`));
    await sleep(500);
    t.ok(proxy.requests.length >= 2, `retried (${proxy.requests.length} attempts)`);
    t.notMatch(c.logs(), /wrong/, 'the password is not logged');
  });
}

t.test('--proxy must be http://, and its error never shows the URL', async (t) => {
  const r = await runCli(['client', '-l', '127.0.0.1:0', '-s', 'ws://127.0.0.1:9/', '-r', '127.0.0.1:9', '--proxy', 'socks5://u:topsecret@h:1']).then(
    async (p) => { await p.stop('SIGKILL'); return 'started'; }, (err: Error) => err.message);
  t.match(r, /flag --proxy: only http:\/\/ proxies are supported/);
  t.notMatch(r, /topsecret/);
});

t.test("a proxy's reason phrase reaches the log capped, however long", async (t) => {
  const long = 'x'.repeat(12_000);
  const proxy = await tcpServer((s) => s.once('data', () => s.end(`HTTP/1.1 403 ${long}\r\n\r\n`)));
  const c = await client('js', 'ws://127.0.0.1:9/', '127.0.0.1:9', ['--proxy', `http://127.0.0.1:${proxy.port}`]);
  t.teardown(async () => { await c.stop('SIGKILL'); await proxy.close(); });
  const line = await c.waitLog(/cannot connect to .*retrying in \d+ ms/);
  t.match(line, /refused CONNECT 127\.0\.0\.1:9: HTTP 403 x+…\(\+\d+ bytes cut\)/, 'cut, and says so');
  t.ok(line.length < 1000, `one short line (${line.length} characters)`);
});
