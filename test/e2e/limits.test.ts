import t from 'tap';
import { connect as netConnect } from 'node:net';
import { connect, echoServer, howItEnds, sleep, tcpServer } from '../helpers/net';
import { randomBytes } from 'node:crypto';
import { buildAuthHeader } from '../../src/auth/tws-auth';
import { engines, PASSWD, runCli } from '../helpers/procs';
import { rawPeer } from '../helpers/raw-peer';
import { waitFor } from '../helpers/wait';

for (const engine of engines()) {
  t.test(`[${engine}] --max-sessions: an authenticated upgrade beyond it gets 503, and the client says why`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--max-sessions', '2']);
    const c = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', '127.0.0.1:9', '--engine', engine, '-c', '3']);
    t.teardown(async () => { await c.stop('SIGKILL'); await server.stop('SIGKILL'); });
    await c.waitLog(/(up → [\s\S]*){2}/);
    t.match(await c.waitLog(/cannot connect .*HTTP 503.*/), /the server is at its session limit, --max-sessions/);
    t.match(await server.waitLog(/refused upgrade .*answered 503\)/), /2 sessions already \(--max-sessions\)/);
    t.equal((server.logs().match(/ up from /g) ?? []).length, 2, 'the server holds exactly 2 sessions');
  });

  t.test(`[${engine}] a 503'd upgrade's socket is closed even when the peer keeps its half open`, async (t) => {
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--max-sessions', '1']);
    t.teardown(() => server.stop('SIGKILL'));
    const first = await rawPeer(server.port);
    t.teardown(() => first.ws.terminate());
    // A client with the password that reads the 503 and never closes its side.
    const s = netConnect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
    const gone = { closed: false, got: '' };
    s.on('error', () => undefined);
    s.on('close', () => { gone.closed = true; });
    s.on('data', (d: Buffer) => { gone.got += d.toString('latin1'); });
    t.teardown(() => s.destroy());
    s.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
      `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tws2\r\nTws-Auth: ${buildAuthHeader(PASSWD)}\r\n\r\n`);
    t.ok(await waitFor(() => gone.got.startsWith('HTTP/1.1 503 ')), 'answered 503');
    // Once the server has let go of its end, what the peer writes is answered with a reset.
    t.ok(await waitFor(() => { if (!gone.closed) s.write('x'); return gone.closed; }, 10_000), 'the server closed its socket');
  });

  t.test(`[${engine}] --max-streams: one stream more than allowed is refused with RESET 5`, async (t) => {
    const hold = await tcpServer(() => undefined);  // accepts and holds
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--max-streams', '2']);
    const c = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', hold.addr, '--engine', engine, '-c', '1']);
    const socks = [connect(c.port, '127.0.0.1'), connect(c.port, '127.0.0.1')];
    t.teardown(async () => { socks.forEach((s) => s.destroy()); await c.stop('SIGKILL'); await server.stop('SIGKILL'); await hold.close(); });
    await c.waitLog(/up → /);
    while (hold.sockets.size < 2) await sleep(20);  // both streams connected to the target
    const third = await howItEnds(connect(c.port, '127.0.0.1'));
    t.equal(third.data.length, 0, 'the third stream got nothing');
    await c.waitLog(/closed \(peer reset: too many streams/);
    await sleep(100);
    t.equal(hold.sockets.size, 2, 'the target saw exactly two connections');
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] --idle-timeout resets a silent stream (RESET 7) and leaves a trickling one alone`, async (t) => {
    const echo = await echoServer();
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--idle-timeout', '1000']);
    const c = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', echo.addr, '--engine', engine, '-c', '1']);
    await c.waitLog(/up → /);
    const silent = connect(c.port, '127.0.0.1');
    const busy = connect(c.port, '127.0.0.1');
    busy.on('data', () => undefined);
    const ticker = setInterval(() => busy.write('.'), 250);
    t.teardown(async () => { clearInterval(ticker); busy.destroy(); silent.destroy(); await c.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close(); });
    silent.write('x');
    const started = Date.now();
    const ended = await howItEnds(silent, 10_000);
    const after = Date.now() - started;
    t.equal(ended.data.toString(), 'x', 'the echo came back first');
    t.ok(after >= 900 && after < 3000, `the silent stream was closed after ${after} ms (idle timeout 1000 ms)`);
    await c.waitLog(/closed \(peer reset: idle/);
    await sleep(1500);
    t.notOk(busy.destroyed, 'the stream with a byte every 250 ms is still open');
  });
}

t.test('a stalled or trickling upgrade request is cut off within 10 s', async (t) => {
  const server = await runCli(['server', '-l', '127.0.0.1:0']);
  t.teardown(() => server.stop('SIGKILL'));
  const started = Date.now();
  const silent = netConnect(server.port, '127.0.0.1');
  const trickle = netConnect(server.port, '127.0.0.1');
  trickle.write('GET / HTTP/1.1\r\nHost: x\r\n');
  const timer = setInterval(() => trickle.writable && trickle.write('X-Slow: 1\r\n'), 500);
  t.teardown(() => { clearInterval(timer); silent.destroy(); trickle.destroy(); });
  const [a, b] = await Promise.all([howItEnds(silent, 20_000), howItEnds(trickle, 20_000)]);
  const secs = (Date.now() - started) / 1000;
  t.ok(secs < 10.5, `both cut after ${secs.toFixed(1)} s`);
  t.ok(secs >= 8.5, 'and not long before the deadline (9 s, checked each second)');
  t.not(a.how, 'timeout');
  t.not(b.how, 'timeout');
});
