import t from 'tap';
import { connect, freePort, hangingTarget, howItEnds, tcpServer } from '../helpers/net';
import { engines, startTunnel } from '../helpers/procs';

for (const engine of engines()) {
  t.test(`[${engine}] a refused target closes the local socket and logs why`, async (t) => {
    // Take a port, then free it, so nothing listens there.
    const tmp = await tcpServer(() => undefined);
    const dead = tmp.addr;
    await tmp.close();
    const tun = await startTunnel({ engine, target: dead });
    t.teardown(() => tun.stop());
    const s = connect({ port: tun.port, host: '127.0.0.1' });
    s.write('early data that can go nowhere');
    const { how, data } = await howItEnds(s);
    t.equal(data.length, 0, 'no data came back');
    t.ok(how === 'reset' || how === 'end', `local socket closed (${how})`);
    await tun.server.waitLog(/refused: connect failed: ECONNREFUSED/);
    // The RESET's reason starts with its code's name: said once, not "connect failed (connect failed: …)".
    await tun.client.waitLog(/closed \(peer reset: connect failed: ECONNREFUSED\) → /);
  });

  t.test(`[${engine}] a target that never answers the connect: RESET 3 after --connect-timeout, logged on both ends`, async (t) => {
    const target = await hangingTarget();
    const tun = await startTunnel({ engine, target: target.addr, serverArgs: ['--connect-timeout', '600', '-v'] });
    t.teardown(async () => { await tun.stop(); await target.close(); });
    const started = Date.now();
    const s = connect({ port: tun.port, host: '127.0.0.1' });
    s.write('early data that can go nowhere');
    const { how, data } = await howItEnds(s);
    const waited = Date.now() - started;
    t.equal(data.length, 0, 'no data came back');
    t.ok(how === 'reset' || how === 'end', `local socket closed (${how})`);
    t.ok(waited >= 550 && waited < 5000, `closed after the connect timeout (${waited} ms)`);
    await tun.server.waitLog(/refused: connect timed out after 600 ms/);
    // The native engine connects by itself (no JavaScript socket); js connects from JavaScript.
    t.match(tun.server.logs(), engine === 'native' ? /connecting 127\.0\.0\.1:\d+ \(in the engine(?:, answered ahead)?\)/ : /connecting 127\.0\.0\.1:\d+\n/);
    await tun.client.waitLog(/closed \(peer reset: timeout \(connect timed out after 600 ms\)\)/);
  });

  t.test(`[${engine}] with no session up a new connection waits for timeout, then is closed with a log line`, async (t) => {
    const target = await tcpServer((s) => s.end());
    const deadServer = await freePort();
    const { runCli } = await import('../helpers/procs');
    const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${deadServer}/`, '-r', target.addr,
      '--engine', engine, '-t', '800']);
    t.teardown(async () => { await client.stop('SIGKILL'); await target.close(); });
    const started = Date.now();
    const s = connect({ port: client.port, host: '127.0.0.1' });
    const { data } = await howItEnds(s);
    const waited = Date.now() - started;
    t.equal(data.length, 0);
    t.ok(waited >= 700, `waited ${waited} ms for a session before giving up`);
    await client.waitLog(/no session to the server within 800 ms; closing connection from 127\.0\.0\.1:\d+/);
  });
}
