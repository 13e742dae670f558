import t from 'tap';
import { randomBytes } from 'node:crypto';
import { echoServer, roundTrip, sha256, tcpServer } from '../helpers/net';
import { engines, runCli, startTunnel } from '../helpers/procs';

// The native engine accepts a plain tunnel's connections itself, on sessions
// and blocks of stream ids the client's JavaScript grants (engine-accept.ts);
// the js engine accepts in JavaScript. Both must carry the same.
for (const engine of engines()) {
  t.test(`[${engine}] 300 connections at once cross several grants, spread over both sessions, every byte intact`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['-c', '2', '--log-level', 'debug'] });
    t.teardown(async () => { await tun.stop(); await echo.close(); });
    const data = Array.from({ length: 300 }, (_, i) => randomBytes(1000 + i * 97));
    const back = await Promise.all(data.map((d) => roundTrip(tun.port, d)));
    t.equal(back.filter((b, i) => sha256(b) === sha256(data[i]!)).length, 300, 'all 300 echoed intact');
    const opens = [...tun.client.logs().matchAll(/session#(\d+) stream#(\d+) open from 127\.0\.0\.1:\d+ → /g)];
    t.equal(opens.length, 300, 'an open line for every connection');
    if (engine === 'native') t.match(tun.client.logs(), /the engine accepts its connections/, 'the engine accepted them itself');
    else t.notMatch(tun.client.logs(), /the engine accepts its connections/, 'JavaScript accepted them');
    const per = new Map<string, Set<string>>();
    for (const m of opens) (per.get(m[1]!) ?? per.set(m[1]!, new Set()).get(m[1]!)!).add(m[2]!);
    t.equal(per.size, 2, `both sessions carried streams (${[...per].map(([s, ids]) => `session#${s}: ${ids.size}`).join(', ')})`);
    t.equal([...per.values()].reduce((n, ids) => n + ids.size, 0), 300, 'no stream id twice within a session');
    for (const ids of per.values()) t.ok([...ids].every((id) => Number(id) % 2 === 1), 'client ids are odd');
  });

  t.test(`[${engine}] connections made before any session is up wait for one, then are carried`, async (t) => {
    const echo = await echoServer();
    // A port with nothing on it yet; the server comes up there later.
    const tmp = await tcpServer(() => undefined);
    const port = tmp.port;
    await tmp.close();
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${port}/`, '-r', echo.addr, '--engine', engine,
      '-c', '1', '-t', '8000', '--retry-timeout', '100']);
    let server: Awaited<ReturnType<typeof runCli>> | undefined;
    t.teardown(async () => { await client.stop('SIGKILL'); await server?.stop('SIGKILL'); await echo.close(); });
    const data = Array.from({ length: 5 }, () => randomBytes(50_000));
    const early = data.map((d) => roundTrip(client.port, d, 20_000));
    await client.waitLog(/cannot reach|connect|ECONNREFUSED/i);
    server = await runCli(['server', '-l', `127.0.0.1:${port}`, '--engine', engine]);
    const back = await Promise.all(early);
    t.same(back.map(sha256), data.map(sha256), 'all five carried once the session came up');
    t.notMatch(client.logs(), /no session to the server within/, 'none gave up');
  });
}
