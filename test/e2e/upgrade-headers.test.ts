import t from 'tap';
import { createServer, Socket } from 'node:net';
import { engines, runCli } from '../helpers/procs';

/** A stand-in server that records each upgrade request's head and answers 404. */
async function recorder(): Promise<{ port: number; heads: string[]; close(): Promise<void> }> {
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  const srv = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      heads.push(buf.slice(0, buf.indexOf('\r\n\r\n')));
      s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as { port: number }).port,
    heads,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); srv.close(() => r()); }),
  };
}

for (const engine of engines()) {
  t.test(`[${engine}] -H and --host-header reach the upgrade request; Tws-Auth stays ours`, async (t) => {
    const rec = await recorder();
    const c = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${rec.port}/tws`, '-r', '127.0.0.1:9', '--engine', engine,
      '-c', '1', '-H', 'X-Team: blue', '--header', 'Authorization: Bearer abc', '--host-header', 'tunnel.example']);
    t.teardown(async () => { await c.stop('SIGKILL'); await rec.close(); });
    await c.waitLog(/server answered HTTP 404/);
    const head = rec.heads[0]!;
    t.match(head, /^GET \/tws HTTP\/1\.1\r\n/);
    t.match(head, /\r\nX-Team: blue(\r\n|$)/i);
    t.match(head, /\r\nAuthorization: Bearer abc(\r\n|$)/i);
    t.match(head, /\r\nHost: tunnel\.example(\r\n|$)/i);
    t.equal((head.match(/\r\nHost:/gi) ?? []).length, 1, 'one Host header');
    t.match(head, /\r\nTws-Auth: /i);
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] a server that trickles its answer cannot stretch the upgrade past --timeout`, async (t) => {
    const sockets = new Set<Socket>();
    const timers = new Set<NodeJS.Timeout>();
    const srv = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
      s.once('data', () => {
        // One byte of a 101 every 150 ms: never idle for long, never done.
        const answer = Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'.repeat(4));
        let i = 0;
        const timer = setInterval(() => { if (!s.destroyed && i < answer.length) s.write(answer.subarray(i, ++i)); }, 150);
        timers.add(timer);
        s.on('close', () => clearInterval(timer));
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    const c = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${port}/`, '-r', '127.0.0.1:9', '--engine', engine, '-c', '1', '-t', '1000']);
    t.teardown(async () => {
      await c.stop('SIGKILL');
      for (const timer of timers) clearInterval(timer);
      for (const s of sockets) s.destroy();
      await new Promise((r) => srv.close(r));
    });
    const started = Date.now();
    t.match(await c.waitLog(/cannot connect to ws:.*/, 8000), /no answer to the upgrade within 1000 ms/);
    t.ok(Date.now() - started < 4000, 'given up at the deadline, not after the whole trickle');
  });
}

t.test('headers the handshake owns are refused at start-up', async (t) => {
  for (const h of ['Tws-Auth: forged', 'Sec-WebSocket-Key: x', 'Host: a', 'Upgrade: h2c', 'Bad Name: x', 'no-colon']) {
    const r = await runCli(['client', '-l', '127.0.0.1:0', '-s', 'ws://127.0.0.1:9/', '-r', '127.0.0.1:9', '-H', h]).then(
      async (p) => { await p.stop('SIGKILL'); return 'started'; }, (err: Error) => err.message);
    t.match(r, /flag -H\/--header: /, `${h}: refused naming the flag`);
  }
});

t.test('YAML headers: a mapping works like -H', async (t) => {
  const rec = await recorder();
  const dir = t.testdir({ 'c.yaml': `listen: 127.0.0.1:0\nserver: ws://127.0.0.1:${rec.port}/\nremote: 127.0.0.1:9\nconnections: 1\nheaders:\n  X-From-Yaml: yes please\n` });
  const c = await runCli(['client', '--config', `${dir}/c.yaml`]);
  t.teardown(async () => { await c.stop('SIGKILL'); await rec.close(); });
  await c.waitLog(/server answered HTTP 404/);
  t.match(rec.heads[0], /\r\nX-From-Yaml: yes please(\r\n|$)/i);
});
