import t from 'tap';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { roundTrip, sha256, sleep } from '../helpers/net';
import { CLI, engines, Proc, runCli } from '../helpers/procs';
import { needs } from '../helpers/tools';

/**
 * Faults on a real link: the server runs in a network namespace this test
 * creates, joined to the host by a veth pair (10.231.N.1 host, .2 inside).
 */
const id = process.pid % 250;
const NS = `twsf${process.pid}`;
const HOST_IF = `twsf${id}h`;
const HOST_IP = `10.231.${id}.1`;
const NS_IP = `10.231.${id}.2`;

function ip(...args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, err: (r.stderr || r.error?.message || '').trim() };
}

function setUp(): string | undefined {
  const steps = [
    ['netns', 'add', NS],
    ['link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', `${HOST_IF}p`],
    ['link', 'set', `${HOST_IF}p`, 'netns', NS],
    ['addr', 'add', `${HOST_IP}/30`, 'dev', HOST_IF],
    ['link', 'set', HOST_IF, 'up'],
    ['-n', NS, 'addr', 'add', `${NS_IP}/30`, 'dev', `${HOST_IF}p`],
    ['-n', NS, 'link', 'set', `${HOST_IF}p`, 'up'],
    ['-n', NS, 'link', 'set', 'lo', 'up'],
  ];
  for (const s of steps) {
    const r = ip(...s);
    if (!r.ok) return `ip ${s.join(' ')}: ${r.err}`;
  }
  return undefined;
}

function tearDown(): void {
  ip('link', 'del', HOST_IF);
  ip('netns', 'del', NS);
}

const noIp = needs('ip');
const why = noIp ? undefined : setUp();
t.teardown(tearDown);
const netem = !noIp && !why && spawnSync('ip', ['netns', 'exec', NS, 'tc', 'qdisc', 'add', 'dev', `${HOST_IF}p`, 'root', 'netem', 'delay', '1ms'], { encoding: 'utf8' }).status === 0;
if (netem) spawnSync('ip', ['netns', 'exec', NS, 'tc', 'qdisc', 'del', 'dev', `${HOST_IF}p`, 'root']);
const noNetns = noIp || (why ? `network namespaces are not available here (${why})` : false);
const noNetem = noNetns || needs('tc') || (netem ? false : 'tc netem is not available in this kernel (no sch_netem): loss and delay cannot be emulated');

/** An echo server inside the namespace (on all its addresses); resolves with its port. */
async function nsEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const code = "require('net').createServer((s)=>{s.on('error',()=>{});s.pipe(s)}).listen(0,'0.0.0.0',function(){console.log(this.address().port)})";
  const p = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    p.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    p.once('exit', () => reject(new Error('echo in the namespace did not start')));
  });
  return { port, close: async () => { p.kill('SIGKILL'); } };
}

/** Server and echo target inside the namespace, client on the host: the WebSocket crosses the link, nothing else does. */
async function tunnelAcross(engine: string, clientArgs: string[]): Promise<{ server: Proc; client: Proc; echo: { port: number; close(): Promise<void> } }> {
  const echo = await nsEcho();
  const server = await runCli(['server', '-l', `${NS_IP}:0`, '--engine', engine], {}, CLI, ['ip', 'netns', 'exec', NS]);
  const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://${NS_IP}:${server.port}/`, '-r', `127.0.0.1:${echo.port}`,
    '--engine', engine, '-c', '1', ...clientArgs]);
  await client.waitLog(/up → /);
  return { server, client, echo };
}

for (const engine of engines()) {
  t.test(`[${engine}] a blackholed link is detected within --timeout, and the client reconnects when it heals`, { skip: noNetns }, async (t) => {
    const { server, client, echo } = await tunnelAcross(engine, ['-t', '2000', '--retry-timeout', '200']);
    t.teardown(async () => { ip('link', 'set', HOST_IF, 'up'); await client.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close(); });
    const data = randomBytes(1_000_000);
    t.equal(sha256(await roundTrip(client.port, data)), sha256(data), 'intact before');
    const cut = Date.now();
    t.ok(ip('link', 'set', HOST_IF, 'down').ok, 'link down');
    await client.waitLog(/peer silent for \d+ ms/, 6000);
    const detected = Date.now() - cut;
    t.ok(detected <= 2000 + 1500, `the dead link was noticed after ${detected} ms (timeout 2000 ms)`);
    await sleep(500);
    t.ok(ip('link', 'set', HOST_IF, 'up').ok, 'link up');
    const healed = Date.now();
    await client.waitLog(/(up → [\s\S]*){2}/, 15_000);
    t.ok(Date.now() - healed < 10_000, `reconnected ${Date.now() - healed} ms after the link healed`);
    t.equal(sha256(await roundTrip(client.port, data)), sha256(data), 'intact after');
  });

  t.test(`[${engine}] 1% packet loss: data stays intact`, { skip: noNetem }, async (t) => {
    const { server, client, echo } = await tunnelAcross(engine, []);
    t.teardown(async () => {
      spawnSync('tc', ['qdisc', 'del', 'dev', HOST_IF, 'root']);
      await client.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close();
    });
    t.equal(spawnSync('tc', ['qdisc', 'add', 'dev', HOST_IF, 'root', 'netem', 'loss', '1%']).status, 0, 'netem loss 1%');
    const datas = [randomBytes(3_000_000), randomBytes(500_000), randomBytes(10)];
    const backs = await Promise.all(datas.map((d) => roundTrip(client.port, d, 60_000)));
    t.same(backs.map(sha256), datas.map(sha256), 'three streams intact through a lossy link');
  });

  t.test(`[${engine}] across a 50 ms RTT link one stream reaches 0.8x a direct TCP connection`, { skip: noNetem }, async (t) => {
    const { server, client, echo } = await tunnelAcross(engine, []);
    t.teardown(async () => {
      spawnSync('tc', ['qdisc', 'del', 'dev', HOST_IF, 'root']);
      spawnSync('ip', ['netns', 'exec', NS, 'tc', 'qdisc', 'del', 'dev', `${HOST_IF}p`, 'root']);
      await client.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close();
    });
    spawnSync('tc', ['qdisc', 'add', 'dev', HOST_IF, 'root', 'netem', 'delay', '25ms', 'rate', '200mbit']);
    spawnSync('ip', ['netns', 'exec', NS, 'tc', 'qdisc', 'add', 'dev', `${HOST_IF}p`, 'root', 'netem', 'delay', '25ms', 'rate', '200mbit']);
    // Bytes per second echoed back over `secs`, keeping the pipe full.
    const rate = async (port: number, host: string, secs: number): Promise<number> => {
      const s = connect(port, host);
      s.on('error', () => undefined);
      const chunk = randomBytes(65536);
      let got = 0;
      const end = Date.now() + secs * 1000;
      s.on('data', (d: Buffer) => (got += d.length));
      const pump = (): void => {
        while (Date.now() < end && s.write(chunk));
        if (Date.now() < end) s.once('drain', pump);
      };
      await new Promise<void>((r) => s.once('connect', () => r()));
      pump();
      await sleep(secs * 1000);
      s.destroy();
      return got / secs;
    };
    const direct = await rate(echo.port, NS_IP, 8);  // a plain TCP connection across the same link
    const tunnelled = await rate(client.port, '127.0.0.1', 8);
    t.ok(tunnelled >= 0.8 * direct, `tunnel ${(tunnelled / 1e6).toFixed(1)} MB/s vs direct ${(direct / 1e6).toFixed(1)} MB/s`);
  });
}

