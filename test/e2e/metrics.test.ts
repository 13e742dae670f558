import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { echoServer, howItEnds, connect, roundTrip } from '../helpers/net';
import { metricsPort, scrape, scrapeWhen, value } from '../helpers/metrics';
import type { Socket } from 'node:net';
import { engines, runCli, startTunnel } from '../helpers/procs';
import { waitFor } from '../helpers/wait';

for (const engine of engines()) {
  t.test(`[${engine}] --metrics: Prometheus text on both sides that follows what happened`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, serverArgs: ['--metrics', '127.0.0.1:0'], clientArgs: ['--metrics', '127.0.0.1:0', '--retry-timeout', '100'] });
    t.teardown(async () => { await tun.stop(); await echo.close(); });
    const [sp, cp] = await Promise.all([metricsPort(tun.server), metricsPort(tun.client)]);
    const sizes = [1000, 250_000, 3_000_000];
    for (const n of sizes) await roundTrip(tun.port, randomBytes(n));
    // A second client (its own tunnel's server unused) whose target nobody listens on: the server RESETs with "connect failed".
    const refusedTun = await startTunnel({ engine, target: '127.0.0.1:1', clientArgs: ['-s', `ws://127.0.0.1:${tun.server.port}/`, '--metrics', '127.0.0.1:0'] });
    t.teardown(async () => { await refusedTun?.stop(); });
    const refused = connect(refusedTun!.port, '127.0.0.1');
    await howItEnds(refused);
    // Each end counts a stream when it has closed it there, and the round trip once a quiet-link ping came back.
    const total = sizes.reduce((a, b) => a + b, 0);
    const c = await scrapeWhen(cp, (b) => (value(b, 'tws_ping_rtt_seconds{stat="mean"}') ?? 0) > 0 && value(b, 'tws_streams_closed_total{how="fin"}') === 3);
    const s = await scrapeWhen(sp, (b) => value(b, 'tws_sessions') === 4 && value(b, 'tws_stream_bytes_total{direction="in"}') === total
      && value(b, 'tws_streams_closed_total{how="refused"}') === 1);
    t.equal(c.status, 200);
    t.match(c.type, /^text\/plain; version=0\.0\.4/);
    t.match(c.body, new RegExp(`^tws_info\\{role="client",engine="${engine}",version="[^"]+"\\} 1$`, 'm'));
    t.match(s.body, /^tws_info\{role="server",/m);
    t.equal(value(c.body, 'tws_sessions'), 2, 'client: its 2 sessions up');
    t.equal(value(s.body, 'tws_sessions'), 4, 'server: 2 sessions from each client');
    t.equal(value(c.body, 'tws_streams_closed_total{how="fin"}'), 3, 'client: 3 streams ended cleanly');
    t.equal(value(c.body, 'tws_stream_bytes_total{direction="out"}'), total, 'client: bytes sent');
    t.equal(value(c.body, 'tws_stream_bytes_total{direction="in"}'), total, 'client: bytes received');
    t.equal(value(s.body, 'tws_stream_bytes_total{direction="in"}'), total, 'server: bytes written to targets');
    t.equal(value(s.body, 'tws_streams_closed_total{how="refused"}'), 1, 'server: one refused stream');
    t.equal(value(c.body, 'tws_streams'), 0, 'client: no stream open now');
    const rtt = value(c.body, 'tws_ping_rtt_seconds{stat="mean"}');
    t.ok(rtt !== undefined && rtt > 0 && rtt < 1, `client: ping rtt ${rtt} s`);
    t.equal(value(c.body, 'tws_reconnects_total'), 0);
    // Seconds are whole microseconds and everything else whole numbers: no float noise like 0.00013800000000000002.
    for (const [side, body] of [['client', c.body], ['server', s.body]] as const) {
      const noisy = body.split('\n').filter((l) => l && !l.startsWith('#') && !/ -?\d+(\.\d{1,6})?$/.test(l));
      t.same(noisy, [], `${side}: every sample prints as a short decimal`);
    }
    const r = await scrapeWhen(await metricsPort(refusedTun!.client), (b) => value(b, 'tws_streams_closed_total{how="peer_reset"}') === 1);
    t.equal(value(r.body, 'tws_stream_resets_received_total{code="connect_failed"}'), 1, 'the other client: one RESET "connect failed"');
    t.equal(value(r.body, 'tws_streams_closed_total{how="peer_reset"}'), 1);
    // Take the server away: the client's sessions go, and failed attempts are counted.
    await tun.server.stop('SIGKILL');
    await tun.client.waitLog(/cannot connect to/);
    const after = await scrapeWhen(cp, (b) => value(b, 'tws_sessions') === 0 && value(b, 'tws_sessions_closed_total{code="1006"}') === 2);
    t.equal(value(after.body, 'tws_sessions'), 0, 'client: no session after the server died');
    t.ok((value(after.body, 'tws_connect_failures_total') ?? 0) >= 1, 'client: failed reconnects counted');
    t.equal(value(after.body, 'tws_sessions_closed_total{code="1006"}'), 2, 'client: both sessions closed abnormally');
  });

  t.test(`[${engine}] --metrics: HEAD /metrics answers as GET does, without a body`, async (t) => {
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, clientArgs: ['--metrics', '127.0.0.1:0'] });
    t.teardown(async () => { await tun.stop(); await echo.close(); });
    const port = await metricsPort(tun.client);
    const head = await scrape(port, 'HEAD');
    t.equal(head.status, 200);
    t.match(head.type, /^text\/plain; version=0\.0\.4/);
    t.ok(head.length > 0, `Content-Length ${head.length}: what GET would send`);
    t.equal(head.body, '');
    // On the wire: the response ends with its header block.
    const raw = connect(port, '127.0.0.1');
    raw.write('HEAD /metrics HTTP/1.0\r\n\r\n');
    const { data } = await howItEnds(raw);
    const text = data.toString('latin1');
    t.match(text, /^HTTP\/1\.[01] 200 /);
    t.equal(text.indexOf('\r\n\r\n'), text.length - 4, 'no byte after the headers');
    t.equal((await scrape(port)).status, 200, 'GET still answers after the HEAD');
  });

  t.test(`[${engine}] --metrics: the standard process metrics agree with /proc`, async (t) => {
    const startedBefore = Date.now() / 1000;
    const echo = await echoServer();
    const tun = await startTunnel({ engine, target: echo.addr, serverArgs: ['--metrics', '127.0.0.1:0'] });
    t.teardown(async () => { await tun.stop(); await echo.close(); });
    const pid = tun.server.proc.pid!;
    const port = await metricsPort(tun.server);
    await roundTrip(tun.port, randomBytes(2_000_000));
    const proc = (): { cpu: number; rss: number; fds: number } => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
      return { cpu: (Number(f[11]) + Number(f[12])) / 100, rss: rssKb * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
    };
    const before = proc();
    const { body } = await scrape(port);
    const after = proc();
    const v = (name: string): number => {
      const x = value(body, name);
      t.type(x, 'number', `${name} present`);
      return x ?? NaN;
    };
    // /proc counts CPU in 10 ms ticks; the scrape itself falls between the two readings.
    const cpu = v('process_cpu_seconds_total');
    t.ok(cpu > 0 && cpu >= before.cpu - 0.02 && cpu <= after.cpu + 0.02, `cpu ${cpu} s between /proc's ${before.cpu} and ${after.cpu}`);
    const rss = v('process_resident_memory_bytes');
    t.ok(rss > 0.7 * Math.min(before.rss, after.rss) && rss < 1.3 * Math.max(before.rss, after.rss), `rss ${rss} near VmRSS ${after.rss}`);
    const fds = v('process_open_fds');
    t.ok(Math.abs(fds - after.fds) <= 2, `open fds ${fds} vs ${after.fds} in /proc/${pid}/fd`);
    const limit = Number(/^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))![1]);
    t.equal(v('process_max_fds'), limit, 'fd limit as in /proc/PID/limits');
    const start = v('process_start_time_seconds');
    t.ok(start >= Math.floor(startedBefore) - 1 && start <= Date.now() / 1000, `started at ${start}, after the test began (${startedBefore})`);
    const used = v('nodejs_heap_size_used_bytes');
    const total = v('nodejs_heap_size_total_bytes');
    t.ok(used > 0 && used <= total && total < rss, `heap ${used} used of ${total}, less than rss`);
    t.ok(v('nodejs_external_memory_bytes') >= 0);
    t.match(body, /^# TYPE process_cpu_seconds_total counter$/m);
    t.match(body, /^# TYPE process_resident_memory_bytes gauge$/m);
  });
}

t.test('--metrics: whoever reaches the port holds at most 16 connections, and one that never finishes its request goes', async (t) => {
  const server = await runCli(['server', '-l', '127.0.0.1:0', '--metrics', '127.0.0.1:0']);
  t.teardown(() => server.stop('SIGKILL'));
  const port = await metricsPort(server);
  const socks: Socket[] = [];
  t.teardown(() => { for (const s of socks) s.destroy(); });
  let closed = 0;
  for (let i = 0; i < 40; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.on('close', () => { closed++; });
    s.resume();  // reads what comes (a 408), so its end is seen
    s.write('GET /metrics HTTP/1.1\r\n');  // and never the rest
    socks.push(s);
  }
  t.ok(await waitFor(() => closed >= 24, 4000), `those past 16 are closed as they come (${closed} closed)`);
  t.ok(await waitFor(() => closed === 40, 15_000), `the others once their request is late (${closed} of 40 closed)`);
  t.equal((await scrape(port)).status, 200, 'a scrape is answered again');
});
