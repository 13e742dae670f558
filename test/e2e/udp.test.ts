import t from 'tap';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { StreamKind } from '../../src/protocol/constants';
import * as codec from '../../src/protocol/frames';
import type { Frame } from '../../src/protocol/frames';
import { metricsPort, scrape, value } from '../helpers/metrics';
import { rssMiB, sleep, tcpServer } from '../helpers/net';
import { engines, runCli, startTunnel } from '../helpers/procs';
import { rawPeer } from '../helpers/raw-peer';
import { exchange, udpEcho } from '../helpers/udp';

const is = (type: string, stream?: number) => (f: Frame): boolean => f.type === type && (stream === undefined || f.stream === stream);

for (const engine of engines()) {
  t.test(`[${engine}] a UDP port in use is one warning, and the client still comes up`, async (t) => {
    const echo = await udpEcho();
    const tmp = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    t.teardown(async () => { await tmp.stop('SIGKILL'); echo.sock.close(); });
    // A port whose UDP side we hold and whose TCP side was free a moment ago (others' tests take ports too: try again if not).
    let client: Awaited<ReturnType<typeof runCli>> | undefined;
    let port = 0;
    for (let i = 0; i < 5 && !client; i++) {
      const tcp = await tcpServer(() => undefined);
      port = tcp.port;
      const busy = createSocket('udp4');
      const held = await new Promise<boolean>((resolve) => {
        busy.once('error', () => resolve(false));
        busy.bind(port, '127.0.0.1', () => resolve(true));
      });
      await tcp.close();
      if (!held) {
        try { busy.close(); } catch { /* never bound */ }
        continue;
      }
      t.teardown(() => busy.close());
      client = await runCli(['client', '-l', `127.0.0.1:${port}`, '-s', `ws://127.0.0.1:${tmp.port}/`, '-r', echo.addr, '--engine', engine, '-c', '1'])
        .catch((err: Error) => { if (/EADDRINUSE \(TWS_ERR_LISTEN\)/.test(err.message)) return undefined; throw err; });
    }
    if (!client) throw new Error('no port with its TCP side free and its UDP side ours');
    t.teardown(() => client!.stop('SIGKILL'));
    await client.waitLog(/up → /);
    const warnings = client.logs().split('\n').filter((l) => / WARN .*udp/.test(l));
    t.equal(warnings.length, 1, `one warning: ${warnings.join(' | ')}`);
    t.match(warnings[0], new RegExp(`udp: cannot listen on port ${port}: EADDRINUSE; carrying TCP only`));
  });

  t.test(`[${engine}] UDP datagrams to the client's listen address reach the remote and come back`, async (t) => {
    const echo = await udpEcho();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['--udp-timeout', '600'] });
    t.teardown(async () => { await tun.stop(); echo.sock.close(); });
    const got = await exchange(tun.port, ['one', 'two', 'three']);
    t.same(got.sort(), ['echo:one', 'echo:three', 'echo:two']);
    await tun.client.waitLog(/stream#\d+ udp open from 127\.0\.0\.1:\d+/);
    // The association ends after udp_timeout without datagrams.
    await tun.client.waitLog(/closed \(idle\)/, 5000);
    t.same(await exchange(tun.port, ['again']), ['echo:again'], 'a new association works after the idle one closed');
  });

  t.test(`[${engine}] udp streams at the byte level, and --no-udp refuses them`, async (t) => {
    const echo = await udpEcho();
    const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
    const noUdp = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine, '--no-udp']);
    t.teardown(async () => { await server.stop('SIGKILL'); await noUdp.stop('SIGKILL'); echo.sock.close(); });
    const p = await rawPeer(server.port);
    p.send(codec.encodeOpen(1, 65536, StreamKind.UDP, echo.addr));
    await p.next(is('open-ok', 1));
    p.send(codec.encodeDatagram(1, Buffer.from('ping')));
    const d = await p.next(is('datagram', 1)) as { payload: Buffer };
    t.equal(d.payload.toString(), 'echo:ping');
    p.send(codec.encodeData(1, Buffer.from('x')));
    t.equal((await p.closed).code, 1002, 'DATA on a udp stream is a protocol error');
    const q = await rawPeer(noUdp.port);
    q.send(codec.encodeOpen(1, 65536, StreamKind.UDP, echo.addr));
    t.equal((await q.next(is('reset', 1)) as { code: number }).code, 1);
    q.ws.close();
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] a UDP target flooding datagrams back at loopback speed cannot grow either process's memory`, async (t) => {
    // The target runs in its own process so its sending does not share our event loop.
    const flooder = spawn(process.execPath, ['-e', `
      const s = require('dgram').createSocket('udp4');
      const payload = Buffer.alloc(1200, 7);
      let sent = 0;
      s.once('message', (m, r) => {
        const until = Date.now() + 4000;
        const burst = () => {
          for (let i = 0; i < 200; i++) { s.send(payload, r.port, r.address); sent++; }
          if (Date.now() < until) setImmediate(burst); else setTimeout(() => { console.log('sent ' + sent); process.exit(0); }, 200);
        };
        burst();
      });
      s.bind(0, '127.0.0.1', () => console.log(s.address().port));
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve) => flooder.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
    const tun = await startTunnel({ engine, target: `127.0.0.1:${port}`, clientArgs: ['-c', '1', '--metrics', '127.0.0.1:0'], serverArgs: ['--metrics', '127.0.0.1:0'] });
    const app = createSocket('udp4');
    t.teardown(async () => { flooder.kill('SIGKILL'); app.close(); await tun.stop(); });
    let received = 0;
    app.on('message', () => { received++; });
    await new Promise<void>((r) => app.bind(0, '127.0.0.1', () => r()));
    const pids = [tun.server.proc.pid!, tun.client.proc.pid!];
    const base = pids.map(rssMiB);
    const peak = [...base];
    const sampler = setInterval(() => pids.forEach((pid, i) => { peak[i] = Math.max(peak[i]!, rssMiB(pid)); }), 100);
    app.send('go', tun.port, '127.0.0.1');
    const sent = await new Promise<string>((resolve) => flooder.stdout!.on('data', (d: Buffer) => { if (/sent/.test(String(d))) resolve(String(d).trim()); }));
    await sleep(500);
    clearInterval(sampler);
    const grew = peak.map((p, i) => p - base[i]!);
    t.ok(grew[0]! < 100 && grew[1]! < 100, `peak RSS growth: server ${grew[0]!.toFixed(0)} MiB, client ${grew[1]!.toFixed(0)} MiB (${sent}, ${received} arrived)`);
    const dropped = await Promise.all([tun.server, tun.client].map(async (p) => value((await scrape(await metricsPort(p))).body, 'tws_datagrams_dropped_total')));
    t.ok(dropped.every((d) => typeof d === 'number'), `tws_datagrams_dropped_total: server ${dropped[0]}, client ${dropped[1]}`);
  });
}

for (const engine of engines()) {
  for (const side of ['client', 'server'] as const) {
    const other = side === 'client' ? 'server' as const : 'client' as const;
    t.test(`[${engine}] an open udp association does not hold up the ${side}'s SIGTERM: it exits long before its 30 s drain timeout`, async (t) => {
      const echo = await udpEcho();
      const drain = ['--drain-timeout', '30000'];
      const tun = await startTunnel({ engine, target: echo.addr, clientArgs: drain, serverArgs: drain });
      t.teardown(async () => { await tun.stop(); echo.sock.close(); });
      t.same(await exchange(tun.port, ['hello']), ['echo:hello'], 'an association is up (its stream lasts --udp-timeout, 60 s)');
      await tun.server.waitLog(/stream#\d+ open → udp /);
      const proc = tun[side].proc;
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
      const started = Date.now();
      proc.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(20_000).then(() => 'still running after 20 s')]);
      const ms = Date.now() - started;
      t.equal(code, 0, 'it exits 0');
      t.ok(ms < 10_000, `within ${ms} ms`);
      t.match(tun[side].logs(), /stream#\d+ closed \(going away\)/, 'the udp stream ended as the drain began');
      await tun[other].waitLog(/stream#\d+ closed \(peer reset: going away/);
    });
  }
}
