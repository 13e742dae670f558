import t from 'tap';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { makeCa, makeCert } from '../../bench/certs';
import { echoServer, roundTrip, sha256, sleep } from '../helpers/net';
import { exampleLocation, startNginx } from '../../bench/nginx';
import { engines, runCli } from '../helpers/procs';
import { needs } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

const missing = needs('nginx', 'openssl');
if (missing) {
  t.plan(0, missing);
} else {
  const dir = t.testdir({});
  const ca = makeCa(dir, 'nginx-test-ca');
  const leaf = makeCert(dir, ca, 'nginx-leaf', ['localhost']);

  /** A plain HTTPS GET to nginx: the example's Upgrade check must answer 404. */
  const plainGet = (port: number): Promise<number> => new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/some/path', servername: 'localhost', ca: readFileSync(ca.cert) }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject).end();
  });

  for (const engine of engines()) {
    t.test(`[${engine}] wss:// through a real nginx (example/nginx.conf): data intact, untrusted certificate refused`, async (t) => {
      const echo = await echoServer();
      const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
      const nginx = await startNginx(dir, { cert: leaf.cert, key: leaf.key, location: exampleLocation(`127.0.0.1:${server.port}`) });
      const url = `wss://localhost:${nginx.port}/some/path`;
      const good = await runCli(['client', '-l', '127.0.0.1:0', '-s', url, '-r', echo.addr, '--engine', engine, '--ca', ca.cert]);
      const bad = await runCli(['client', '-l', '127.0.0.1:0', '-s', url, '-r', echo.addr, '--engine', engine, '-c', '1']);
      t.teardown(async () => { await Promise.all([good.stop('SIGKILL'), bad.stop('SIGKILL')]); await nginx.stop(); await server.stop('SIGKILL'); await echo.close(); });
      await good.waitLog(/(up → wss:[\s\S]*){2}/);
      const datas = [randomBytes(4_000_000), randomBytes(1), randomBytes(300_000)];
      const backs = await Promise.all(datas.map((d) => roundTrip(good.port, d)));
      t.same(backs.map(sha256), datas.map(sha256), 'three concurrent streams intact through nginx + TLS');
      t.match(await bad.waitLog(/cannot connect .*/), /TLS: .*trust its CA with --ca FILE/, 'no --ca: the certificate is refused, clearly');
      t.equal(await plainGet(nginx.port), 404, 'a plain GET on the path gets 404 from the Upgrade check');
    });
  }

  t.test('scale-out: two servers behind an nginx upstream; one dies, its sessions move to the other', async (t) => {
    const engine = engines().includes('native') ? 'native' : 'js';
    const echo = await echoServer();
    const a = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    const b = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    const nginx = await startNginx(dir, {
      cert: leaf.cert, key: leaf.key,
      http: `upstream tws_servers { server 127.0.0.1:${a.port}; server 127.0.0.1:${b.port}; }`,
      location: exampleLocation('tws_servers'),
    });
    const c = await runCli(['client', '-l', '127.0.0.1:0', '-s', `wss://localhost:${nginx.port}/some/path`, '-r', echo.addr, '--engine', engine,
      '--ca', ca.cert, '-c', '4', '--retry-timeout', '100']);
    t.teardown(async () => { await c.stop('SIGKILL'); await nginx.stop(); await Promise.all([a.stop('SIGKILL'), b.stop('SIGKILL')]); await echo.close(); });
    await c.waitLog(/(up → wss:[\s\S]*){4}/);
    const upsOn = (p: typeof a): number => (p.logs().match(/ up from /g) ?? []).length;
    // A server logs its side a moment after the client has seen the 101: wait for those lines.
    await waitFor(() => upsOn(a) + upsOn(b) >= 4, 5000);
    t.equal(upsOn(a) + upsOn(b), 4, 'four sessions');
    t.ok(upsOn(a) >= 1 && upsOn(b) >= 1, `spread over both servers (${upsOn(a)} + ${upsOn(b)})`);
    const before = randomBytes(500_000);
    t.equal(sha256(await roundTrip(c.port, before)), sha256(before), 'data intact before');
    const lost = upsOn(a);
    await a.stop('SIGKILL');
    // Each session that was on A comes back up, through nginx, on B.
    await b.waitLog(new RegExp(`(?: up from [\\s\\S]*?){${4}}`), 15_000);
    await sleep(200);
    t.equal(upsOn(b), 4, `B now carries all four (${lost} moved over)`);
    const datas = Array.from({ length: 8 }, () => randomBytes(200_000));
    const backs = await Promise.all(datas.map((d) => roundTrip(c.port, d)));
    t.same(backs.map(sha256), datas.map(sha256), 'new streams keep working');
  });
}
