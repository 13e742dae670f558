/**
 * Many tunnels per client (-L, YAML tunnels:): each carried to its own target
 * over the client's shared sessions, alongside tws-rust's -l/-r tunnel.
 */
import t from 'tap';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createClient, createServer } from '../../src/api';
import { metricsPort, scrapeWhen, value } from '../helpers/metrics';
import { roundTrip, sha256, tcpServer, TcpServer } from '../helpers/net';
import { engines, Proc, runCli, runToExit as tws } from '../helpers/procs';
import { exchange, udpEcho } from '../helpers/udp';

/** An echo server that first says which one it is, so a stream reaching the wrong target shows. */
function taggedEcho(tag: string): Promise<TcpServer> {
  return tcpServer((s) => {
    s.write(`${tag}\n`);
    s.pipe(s);
  });
}

/** The local port a tunnel to `target` listens on, from the client's log line naming it. */
async function tunnelPort(client: Proc, target: string, udp = false): Promise<number> {
  const esc = target.replace(/[.[\]]/g, '\\$&');
  const line = await client.waitLog(new RegExp(`${udp ? 'udp ' : ''}listening on 127\\.0\\.0\\.1:(\\d+) → ${esc} \\(-L 0:${esc}${udp ? '/udp' : ''}\\)`));
  return Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);
}

async function startServer(t: Test, engine: string): Promise<Proc> {
  const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', engine]);
  t.teardown(() => server.stop('SIGKILL'));
  return server;
}

for (const engine of engines()) {
  t.test(`[${engine}] several -L tunnels at once, each to its own target, intact, over shared sessions`, async (t) => {
    const targets = await Promise.all(['one', 'two', 'three'].map(taggedEcho));
    t.teardown(() => Promise.all(targets.map((x) => x.close())));
    const server = await startServer(t, engine);
    const client = await runCli(['client', '-s', `ws://127.0.0.1:${server.port}/`, '--engine', engine, '-c', '2',
      '--metrics', '127.0.0.1:0', ...targets.flatMap((x) => ['-L', `0:${x.addr}`])]);
    t.teardown(() => client.stop('SIGKILL'));
    const ports = await Promise.all(targets.map((x) => tunnelPort(client, x.addr)));
    await client.waitLog(/(?:[\s\S]*?up → ){2}/);
    const tags = ['one', 'two', 'three'];
    // Two connections per tunnel, all at once, a few MB each.
    const runs = ports.flatMap((port, i) => [0, 1].map(async () => {
      const data = randomBytes(3 * 1024 * 1024 + i);
      const got = await roundTrip(port, data, 60_000);
      const head = `${tags[i]}\n`;
      t.equal(got.subarray(0, head.length).toString(), head, `tunnel ${i} reached ${tags[i]}`);
      t.equal(sha256(got.subarray(head.length)), sha256(data), `tunnel ${i}: sha256 intact`);
    }));
    await Promise.all(runs);
    for (const x of targets) {
      const addr = x.addr.replace(/\./g, '\\.');
      t.match(client.logs(), new RegExp(`stream#\\d+ open from 127\\.0\\.0\\.1:\\d+ → ${addr} \\(-L 0:${addr}\\)`), `open lines name the tunnel to ${x.addr}`);
      await client.waitLog(new RegExp(`stream#\\d+ closed \\(fin\\) → ${addr} \\(-L 0:${addr}\\) in=`));
    }
    // Metrics count each tunnel's streams and bytes under its name.
    const mport = await metricsPort(client);
    const size = (i: number): number => 2 * (3 * 1024 * 1024 + i);
    const m = await scrapeWhen(mport, (b) => targets.every((x) => value(b, `tws_tunnel_streams_closed_total{tunnel="-L 0:${x.addr}"}`) === 2));
    for (const [i, x] of targets.entries()) {
      t.equal(value(m.body, `tws_tunnel_bytes_total{tunnel="-L 0:${x.addr}",direction="out"}`), size(i), `metrics: bytes sent through -L 0:${x.addr}`);
    }
    t.pass('close lines name their tunnel');
    const sessions = new Set([...client.logs().matchAll(/session#(\d+) stream#\d+ open/g)].map((m) => m[1]));
    t.ok(sessions.size >= 1 && sessions.size <= 2, `all tunnels' streams ride the client's 2 sessions (${[...sessions].join(',')})`);
  });

  t.test(`[${engine}] a /udp tunnel carries datagrams; -l/-r and -L tunnels run side by side`, async (t) => {
    const udp = await udpEcho();
    const tcp = await taggedEcho('tcp');
    const legacy = await taggedEcho('legacy');
    t.teardown(async () => { udp.sock.close(); await tcp.close(); await legacy.close(); });
    const server = await startServer(t, engine);
    const client = await runCli(['client', '-s', `ws://127.0.0.1:${server.port}/`, '--engine', engine, '-c', '1',
      '-l', '127.0.0.1:0', '-r', legacy.addr, '--no-udp', '--udp-timeout', '500', '-L', `0:${udp.addr}/udp`, '-L', `0:${tcp.addr}`]);
    t.teardown(() => client.stop('SIGKILL'));
    const udpPort = await tunnelPort(client, udp.addr, true);
    const tcpPort = await tunnelPort(client, tcp.addr);
    await client.waitLog(/up → /);
    t.same((await exchange(udpPort, ['a', 'b'])).sort(), ['echo:a', 'echo:b'], 'datagrams through the /udp tunnel');
    await client.waitLog(new RegExp(`stream#\\d+ udp open from 127\\.0\\.0\\.1:\\d+ → ${udp.addr.replace(/\./g, '\\.')} \\(-L 0:`));
    await client.waitLog(new RegExp(`stream#\\d+ closed \\(idle\\) → ${udp.addr.replace(/\./g, '\\.')} \\(-L 0:${udp.addr.replace(/\./g, '\\.')}/udp\\)`), 5000);
    t.equal((await roundTrip(tcpPort, Buffer.from('x'))).toString(), 'tcp\nx', 'the -L tcp tunnel');
    t.equal((await roundTrip(client.port, Buffer.from('y'))).toString(), 'legacy\ny', 'the -l/-r tunnel (the first listening line)');
  });

  t.test(`[${engine}] tws-rust's -l/-r alone is still one tunnel, TCP plus UDP, logged as before`, async (t) => {
    const tcp = await taggedEcho('only');
    t.teardown(() => tcp.close());
    const server = await startServer(t, engine);
    const client = await runCli(['client', '-s', `ws://127.0.0.1:${server.port}/`, '--engine', engine, '-c', '1', '-l', '127.0.0.1:0', '-r', tcp.addr]);
    t.teardown(() => client.stop('SIGKILL'));
    await client.waitLog(/udp listening on 127\.0\.0\.1:\d+ → /);
    await client.waitLog(/up → /);
    t.equal((await roundTrip(client.port, Buffer.from('z'))).toString(), 'only\nz');
    await client.waitLog(/stream#\d+ open from 127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+\n/);
    const logs = client.logs();
    t.equal(logs.match(/^.*(?<!udp )listening on /gm)?.length, 1, 'one TCP listener');
    t.equal(logs.match(/udp listening on /g)?.length, 1, 'one UDP listener, on the same port');
    t.match(logs, new RegExp(`udp listening on 127\\.0\\.0\\.1:${client.port} → `));
    await client.waitLog(/stream#\d+ closed \(fin\) → 127\.0\.0\.1:\d+ in=/);
    t.notMatch(client.logs(), /\(-L /, 'no -L names in its lines');
  });

  t.test(`[${engine}] YAML tunnels: strings and maps`, async (t) => {
    const a = await taggedEcho('yaml-a');
    const b = await taggedEcho('yaml-b');
    const udp = await udpEcho();
    t.teardown(async () => { await a.close(); await b.close(); udp.sock.close(); });
    const server = await startServer(t, engine);
    const dir = t.testdir({
      'client.yaml': [
        `server: ws://127.0.0.1:${server.port}/`, `engine: ${engine}`, 'connections: 1', 'tunnels:',
        `  - 0:${a.addr}`,
        `  - { listen: 0, remote: "${b.addr}" }`,
        `  - listen: "127.0.0.1:0"`, `    remote: "${udp.addr}"`, '    udp: true', '',
      ].join('\n'),
    });
    const client = await runCli(['client', '--config', join(dir, 'client.yaml')]);
    t.teardown(() => client.stop('SIGKILL'));
    const pa = await tunnelPort(client, a.addr);
    const pb = await tunnelPort(client, b.addr);
    const pu = await tunnelPort(client, udp.addr, true);
    await client.waitLog(/up → /);
    t.equal((await roundTrip(pa, Buffer.from('1'))).toString(), 'yaml-a\n1');
    t.equal((await roundTrip(pb, Buffer.from('2'))).toString(), 'yaml-b\n2');
    t.same(await exchange(pu, ['3']), ['echo:3']);
  });

  t.test(`[${engine}] a -L port already taken is one error naming the tunnel`, async (t) => {
    const taken = await taggedEcho('taken');
    t.teardown(() => taken.close());
    const r = await tws(['client', '-s', 'ws://127.0.0.1:1/', '--engine', engine, '-L', `0:${taken.addr}`, '-L', `${taken.port}:${taken.addr}`]);
    t.equal(r.code, 1);
    t.match(r.err, new RegExp(`tws: error: cannot listen on 127\\.0\\.0\\.1:${taken.port} \\(-L ${taken.port}:127\\.0\\.0\\.1:${taken.port}\\): EADDRINUSE \\(TWS_ERR_LISTEN\\)`));
  });
}

for (const engine of engines()) {
  t.test(`[${engine}] the API takes tunnels as -L specs and reports each bound address`, async (t) => {
    const a = await taggedEcho('api-a');
    const udp = await udpEcho();
    const s = await createServer({ listen: '127.0.0.1:0', passwd: 'pw', engine: engine as 'js' | 'native' });
    t.teardown(async () => { await s.shutdown(0); await a.close(); udp.sock.close(); });
    const c = await createClient({ server: `ws://127.0.0.1:${s.address.port}/`, passwd: 'pw', engine: engine as 'js' | 'native', connections: 1,
      tunnels: [`0:${a.addr}`, `0:${udp.addr}/udp`] });
    t.teardown(() => c.shutdown(0));
    t.same(c.tunnels.map((x) => x.name), [`-L 0:${a.addr}`, `-L 0:${udp.addr}/udp`]);
    t.equal(c.address.port, c.tunnels[0]!.address!.port, 'address is the first tunnel\'s');
    t.equal((await roundTrip(c.tunnels[0]!.address!.port, Buffer.from('q'), 10_000)).toString(), 'api-a\nq');
    t.same(await exchange(c.tunnels[1]!.address!.port, ['r'], 5000), ['echo:r']);
    await t.rejects(createClient({ server: 'ws://127.0.0.1:1/', passwd: 'pw', engine: 'js', tunnels: ['1:a'] }),
      { code: 'TWS_ERR_CONFIG', message: /tunnels: expected \[BIND:\]PORT:HOST:PORT\[\/udp\], got "1:a"/ });
    await t.rejects(createClient({ server: 'ws://127.0.0.1:1/', passwd: 'pw', engine: 'js' }), { code: 'TWS_ERR_CONFIG', message: /needs a tunnel/ });
  });
}

t.test('bad -L specs are one-line config errors naming the value, exit 1', async (t) => {
  const cases: [string[], RegExp][] = [
    [['-L', '2222:db'], /^tws: error: flag -L\/--local: expected \[BIND:\]PORT:HOST:PORT\[\/udp\], got "2222:db" \(TWS_ERR_CONFIG\)\n$/],
    [['-L', '2222:db:70000'], /^tws: error: flag -L\/--local: port 70000 is out of range \(1-65535\) in target of "2222:db:70000" \(TWS_ERR_CONFIG\)\n$/],
    [['-L', '2222:a:1', '-L', '2222:b:2'], /^tws: error: tunnels -L 2222:a:1 and -L 2222:b:2 both listen on tcp 127\.0\.0\.1:2222 \(TWS_ERR_CONFIG\)\n$/],
    [[], /^tws: error: missing required option: -l\/--listen with -r\/--remote, -L\/--local, -R\/--reverse, -D\/--socks, --http-connect or --stdio/],
    [['-R', 'localhost:8080:h:80'], /^tws: error: flag -R\/--reverse: the server binds an IP address .* got "localhost:8080:h:80" \(TWS_ERR_CONFIG\)\n$/],
  ];
  for (const [args, re] of cases) {
    const r = await tws(['client', '-s', 'ws://127.0.0.1:1/', ...args]);
    t.equal(r.code, 1, args.join(' '));
    t.match(r.err, re, args.join(' '));
  }
});
