import t from 'tap';
import { randomBytes } from 'node:crypto';
import { createServer, Server } from 'node:net';
import { connect, echoServer, howItEnds, roundTrip, sha256 } from '../helpers/net';
import { engines, Proc, runCli } from '../helpers/procs';

/** An echo server on another loopback address (127.0.0.2). */
async function echoOn(host: string): Promise<{ port: number; close(): Promise<void> }> {
  const srv: Server = createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
  await new Promise<void>((r) => srv.listen(0, host, r));
  return { port: (srv.address() as { port: number }).port, close: () => new Promise((r) => srv.close(() => r())) };
}

async function clientTo(engine: string, server: Proc, target: string): Promise<Proc> {
  const c = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', target, '--engine', engine, '-c', '1']);
  await c.waitLog(/up → /);
  return c;
}

for (const engine of engines()) {
  t.test(`[${engine}] --allow: only matching targets are reached; the rest get RESET 1 and a log line`, async (t) => {
    const echo = await echoServer();
    const other = await echoOn('127.0.0.2');
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine,
      '--allow', `127.0.0.1:${echo.port}`, '--allow', `127.0.0.0/30:${other.port}-${other.port}`, '--allow', `10.0.0.0/8:*`]);
    const clients: Proc[] = [];
    t.teardown(async () => { await Promise.all([...clients.map((c) => c.stop('SIGKILL')), server.stop('SIGKILL')]); await echo.close(); await other.close(); });
    await server.waitLog(/allow-list: 127\.0\.0\.1:\d+, 127\.0\.0\.0\/30:\d+-\d+, 10\.0\.0\.0\/8:\*; everything else is denied/);
    t.notMatch(server.logs(), /no allow-list/);

    const exact = await clientTo(engine, server, echo.addr);
    const cidr = await clientTo(engine, server, `127.0.0.2:${other.port}`);
    // "localhost" resolves to 127.0.0.1: allowed by the address rule for that port, whatever the name.
    const byName = await clientTo(engine, server, `localhost:${echo.port}`);
    // An address the rules cover, on a port none of them has.
    const wrongPort = await clientTo(engine, server, '127.0.0.1:1');
    clients.push(exact, cidr, byName, wrongPort);

    const data = randomBytes(300_000);
    t.equal(sha256(await roundTrip(exact.port, data)), sha256(data), 'exact ip:port rule: data intact');
    t.equal(sha256(await roundTrip(cidr.port, data)), sha256(data), 'CIDR + port range rule: data intact');
    t.equal(sha256(await roundTrip(byName.port, data)), sha256(data), 'a name is checked by the address it resolves to');

    const denied = await howItEnds(connect(wrongPort.port, '127.0.0.1'));
    t.equal(denied.data.length, 0, 'denied: nothing came back');
    t.match(await server.waitLog(/session#\d+ stream#\d+ denied → 127\.0\.0\.1:1: .*/), /not allowed \(resolved to 127\.0\.0\.1; no --allow rule matches\)/,
      'the server logs the session, stream and target it denied');
    await wrongPort.waitLog(/closed \(peer reset: denied/);
  });

  t.test(`[${engine}] a name cannot get past a CIDR rule: it is checked by what it resolves to`, async (t) => {
    const echo = await echoServer();
    // Only 10/8 is allowed; "localhost" resolves to loopback and must be refused though the port is open.
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--allow', '10.0.0.0/8:*', '--allow', `[::1]:${echo.port}`]);
    const c = await clientTo(engine, server, `localhost:${echo.port}`);
    t.teardown(async () => { await c.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close(); });
    const r = await howItEnds(connect(c.port, '127.0.0.1'));
    t.equal(r.data.length, 0);
    t.match(await server.waitLog(/denied → localhost:\d+: .*/), /resolved to [^;]*127\.0\.0\.1/);
    t.equal(echo.sockets.size, 0, 'the target never saw a connection');
  });
}

t.test('bad --allow rules are config errors naming the flag; YAML allow: works', async (t) => {
  for (const bad of ['10.0.0.0/33:22', '10.0.0.1', 'host:0', '::1:22', 'x:5-3', 'bad_host!:1']) {
    const r = await runCli(['server', '-l', '127.0.0.1:0', '--allow', bad]).then(async (p) => { await p.stop('SIGKILL'); return 'started'; }, (e: Error) => e.message);
    t.match(r, /flag --allow: /, `${bad}: refused`);
  }
  const dir = t.testdir({ 's.yaml': 'listen: 127.0.0.1:0\nallow:\n  - "*:443"\n  - db.internal:5432\n' });
  const p = await runCli(['server', '--config', `${dir}/s.yaml`]);
  t.teardown(() => p.stop('SIGKILL'));
  await p.waitLog(/allow-list: \*:443, db\.internal:5432;/);
  t.pass('YAML allow: list loaded');
});
