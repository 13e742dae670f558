import t from 'tap';
import { request } from 'node:http';
import { buildAuthHeader } from '../../src/auth/tws-auth';
import { connect, howItEnds, tcpServer } from '../helpers/net';
import { engines, PASSWD, runCli, startTunnel } from '../helpers/procs';
import { rawPeer } from '../helpers/raw-peer';

/** Sends a raw HTTP request and returns the status line and whether any target got a connection. */
function rawRequest(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let out = '';
    s.on('data', (c: Buffer) => { out += c.toString(); });
    s.on('close', () => resolve(out));
    s.on('error', reject);
    s.write(head);
  });
}

const upgrade = (path: string, extra: string): string =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tws2\r\n${extra}\r\n`;

for (const engine of engines()) {
  t.test(`[${engine}] anything but an authenticated upgrade on the path gets the same 404`, async (t) => {
    let targetConnections = 0;
    const target = await tcpServer(() => { targetConnections++; });
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--path', '/tws', '--engine', engine]);
    t.teardown(async () => { await server.stop('SIGKILL'); await target.close(); });
    const good = `Tws-Auth: ${buildAuthHeader(PASSWD)}\r\n`;
    const cases: [string, string][] = [
      ['plain GET', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'],
      ['plain GET on the path', 'GET /tws HTTP/1.1\r\nHost: x\r\n\r\n'],
      ['wrong path', upgrade('/other', good)],
      ['no auth header', upgrade('/tws', '')],
      ['wrong password', upgrade('/tws', `Tws-Auth: ${buildAuthHeader('wrong')}\r\n`)],
      ['wrong password, claiming another address', upgrade('/tws', `Tws-Auth: ${buildAuthHeader('wrong')}\r\nX-Forwarded-For: 198.51.100.7 via 10.0.0.1:443\r\n`)],
      ['stale timestamp', upgrade('/tws', `Tws-Auth: ${buildAuthHeader(PASSWD, undefined, Date.now() - 60_000)}\r\n`)],
      ['garbage auth', upgrade('/tws', 'Tws-Auth: v1 hello\r\n')],
      ['no tws2 subprotocol', upgrade('/tws', good).replace('Sec-WebSocket-Protocol: tws2', 'Sec-WebSocket-Protocol: chat')],
      ['bad key', upgrade('/tws', `Tws-Auth: ${buildAuthHeader(PASSWD)}\r\n`).replace('dGhlIHNhbXBsZSBub25jZQ==', 'short')],
    ];
    const answers = new Set<string>();
    for (const [what, head] of cases) {
      const res = await rawRequest(server.port, head);
      t.match(res, /^HTTP\/1\.1 404 Not Found\r\n/, what);
      answers.add(res.replace(/^Date: .*\r\n/m, '').replace(/\r\n\r\n.*$/s, '').split('\r\n').filter((l) => !/^(Date|Keep-Alive|Connection):/i.test(l)).join('|'));
    }
    t.equal(answers.size, 1, 'a prober cannot tell the cases apart by the status line and headers');
    t.equal(targetConnections, 0, 'no target was ever contacted');
    // the server logged the real reasons, never the password
    const logs = server.logs();
    t.match(logs, /refused upgrade from .*: bad mac \(wrong password\?\)/);
    t.match(logs, /refused upgrade from .*: path "\/other"/);
    t.match(logs, /refused upgrade from 127\.0\.0\.1:\d+ \(X-Forwarded-For "198\.51\.100\.7 via 10\.0\.0\.1:443"\): bad mac/,
      'the address the socket proves comes first; what the peer claims follows, quoted');
    t.match(logs, /timestamp off by/);
    t.notMatch(logs, new RegExp(PASSWD));
  });

  t.test(`[${engine}] a replayed Tws-Auth header is refused`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(() => server.stop('SIGKILL'));
    const auth = buildAuthHeader(PASSWD);
    const first = await rawPeer(server.port, { auth });
    first.ws.close();
    const replay = await rawPeer(server.port, { auth }).then((p) => { p.ws.close(); return undefined; }, (e: unknown) => e);
    t.equal((replay as { status?: number } | undefined)?.status, 404, 'the replayed header is answered 404');
    await server.waitLog(/replayed nonce/);
  });

  t.test(`[${engine}] a client with the wrong password gets no data through and says why`, async (t) => {
    let targetConnections = 0;
    const target = await tcpServer((s) => { targetConnections++; s.end('secret data'); });
    const tun = await startTunnel({ engine, target: target.addr, env: {}, waitSessions: false,
      clientArgs: ['-p', 'wrong-password', '-t', '1000'] });
    t.teardown(async () => { await tun.stop(); await target.close(); });
    await tun.client.waitLog(/server answered HTTP 404 \(wrong password/);
    const s = connect({ port: tun.port, host: '127.0.0.1' });
    const { data } = await howItEnds(s);
    t.equal(data.length, 0);
    t.equal(targetConnections, 0);
    t.notMatch(tun.client.logs(), /wrong-password/, 'the password is not logged');
  });

  t.test(`[${engine}] the server does not answer plain HTTP with anything but 404`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(() => server.stop('SIGKILL'));
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: server.port, path: '/', method: 'POST' }, (res) => { res.resume(); resolve(res.statusCode!); });
      req.on('error', reject);
      req.end('x');
    });
    t.equal(status, 404);
  });
}
