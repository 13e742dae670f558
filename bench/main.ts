/**
 * `npm run bench`: measures tws against a direct loopback connection.
 * Starts everything it needs (iperf3 server, tunnels per engine, an echo
 * helper), prints a table, writes JSON and an SVG chart, and cleans up.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { renderSvg } from './chart';
import { connectRateSocks, idleStreams, iperf, pingPong } from './measure';
import { LoadGenerator, loadGenerator } from './loadgen';
import { makeCa, makeCert } from './certs';
import { exampleLocation, hasNginx, startNginx } from './nginx';
import { Peer, printable, resolvePeers, startPeer } from './peers';
import { schedule, Step } from './plan';
import { contextSwitches, cpuSeconds, freePort, Front, hasIperf3, peakRssMiB, sessionsOf, start, startEcho, startTunnel, stop, Tunnel } from './procs';
import { aggregate, EngineName, machine, Report, Run, table } from './report';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const VERSION: string = require('../../package.json').version;

interface Options {
  quick: boolean;
  duration: number;
  engines: string[];
  json?: string;
  idleStreams: number;
  rounds: number;
  peers: Peer[];
}

function parseArgs(argv: string[]): Options {
  const cmd = new Command('npm run bench --')
    .description('Benchmark tws-native against a direct loopback connection (needs iperf3)')
    .option('--quick', 'short runs: the whole benchmark in under a minute')
    .option('--duration <s>', 'seconds per measurement (default 10, or 2 with --quick)')
    .option('--engines <list>', 'engines to measure, comma-separated', 'native,js')
    .option('--json <file>', 'write results here (default bench/results/bench-<date>.json); the SVG goes next to it')
    .option('--idle-streams <n>', 'idle streams held open for the memory scenario (default 10000, or 2000 with --quick)')
    .option('--rounds <n>', 'rounds: every scenario runs once per round, the engines back to back in a rotating order; figures are medians with their range (default 3, or 1 with --quick)')
    .option('--peer <name=path>', 'also measure another tunnel, in the same rounds (repeatable): wstunnel (erebe/wstunnel, --websocket-mask-frame), wstunnel-unmasked, tws-rust',
      (v: string, all: string[]) => [...all, v], [] as string[])
    .parse(argv, { from: 'user' });
  const o = cmd.opts();
  const duration = o.duration !== undefined ? Number(o.duration) : o.quick ? 2 : 10;
  if (!Number.isFinite(duration) || duration < 1 || duration > 600) {
    process.stderr.write('bench: --duration must be a number of seconds from 1 to 600\n');
    process.exit(2);
  }
  const idle = o.idleStreams !== undefined ? Number(o.idleStreams) : o.quick ? 2000 : 10000;
  if (!Number.isInteger(idle) || idle < 1 || idle > 100_000) {
    process.stderr.write('bench: --idle-streams must be a whole number from 1 to 100000\n');
    process.exit(2);
  }
  const rounds = o.rounds !== undefined ? Number(o.rounds) : o.quick ? 1 : 3;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    process.stderr.write('bench: --rounds must be a whole number from 1 to 20\n');
    process.exit(2);
  }
  const peers = resolvePeers(o.peer as string[]);
  if (typeof peers === 'string') {
    process.stderr.write(`bench: ${peers}\n`);
    process.exit(2);
  }
  return { quick: !!o.quick, duration, engines: String(o.engines).split(',').map((e) => e.trim()).filter(Boolean), json: o.json, idleStreams: idle, rounds, peers };
}

let step = 0;
let steps = 0;
function progress(what: string): void {
  step++;
  process.stderr.write(`[${step}/${steps}] ${what}\n`);
}

/** Which engines can run here, from `tws --version`; the rest are listed as skipped. */
function available(engines: string[]): { ok: EngineName[]; skipped: Report['skipped'] } {
  const version = spawnSync(process.execPath, [join(__dirname, '..', 'cli', 'main.js'), '--version'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  const nativeWhy = /native unavailable: (.*?)(?:, [a-z]+-[a-z0-9]+\))?$/m.exec(version)?.[1];
  const ok: EngineName[] = [];
  const skipped: Report['skipped'] = [];
  for (const e of engines) {
    if (e !== 'js' && e !== 'native') skipped.push({ engine: e, reason: 'unknown engine' });
    else if (e === 'native' && nativeWhy) skipped.push({ engine: e, reason: nativeWhy });
    else ok.push(e);
  }
  return { ok, skipped };
}

/** Measures a scenario through a fresh tunnel (tws or a peer), adding peak RSS and CPU per GB of its server and client processes. */
async function throughTunnel(engine: EngineName, startIt: () => Promise<Tunnel>, body: (t: Tunnel) => Promise<{ run: Omit<Run, 'engine'>; bytes?: number }>): Promise<Run> {
  const t = await startIt();
  try {
    const pids = [t.server.pid!, t.client.pid!];
    const frontPids = t.frontPids();
    const cpuOf = (list: number[]): number => list.reduce((n, p) => n + cpuSeconds(p), 0);
    const switchesOf = (list: number[]): number => list.reduce((n, p) => n + contextSwitches(p), 0);
    const cpu0 = cpuOf(pids);
    const switches0 = switchesOf(pids);
    const frontCpu0 = cpuOf(frontPids);
    const { run, bytes } = await body(t);
    const cpu = cpuOf(pids) - cpu0;
    const switches = switchesOf(pids) - switches0;
    const out: Run = { ...run, engine, rss_mb: pids.reduce((n, p) => n + peakRssMiB(p), 0) };
    if (bytes) out.cpu_s_per_gb = cpu / (bytes / 1e9);
    if (bytes) out.switches_per_gb = switches / (bytes / 1e9);
    if (bytes && frontPids.length) out.front_cpu_s_per_gb = (cpuOf(frontPids) - frontCpu0) / (bytes / 1e9);
    return out;
  } finally {
    await t.stop();
  }
}

/** What a step measures: where its tunnel leads, with which flags, through which front, and the measurement itself. */
interface Measurement {
  label: string;
  /** `connect`: the connection-rate echo target (connect-load serve, else the echo helper). */
  target: 'iperf' | 'echo' | 'connect';
  clientArgs: string[];
  serverArgs?: string[];
  front?: Front;
  /** `tunnel`: the running tunnel (absent for direct), for what its logs say. */
  body(port: number, tunnel?: Tunnel): Promise<{ run: Omit<Run, 'engine' | 'round'>; bytes?: number }>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * What each scenario measures (`D`: seconds per measurement; `tls`:
 * certificates and fronts for the wss:// and nginx ones; `echoTarget`: the
 * echo server, which SOCKS clients name themselves).
 */
function measurements(o: Options, tls: { ca: string; cert: string; key: string; dir: string }, echo: { target: string; connectPid: number }, load: LoadGenerator): (step: Step) => Measurement {
  const echoTarget = echo.target;
  const D = o.duration;
  const bulk = (scenario: Run['scenario'], direction: Step['direction']) => async (port: number): Promise<{ run: Omit<Run, 'engine' | 'round'>; bytes: number }> => {
    const r = await iperf(port, D, { reverse: direction === 'reverse' });
    return { run: { scenario, direction, gbps: r.gbps }, bytes: r.bytes };
  };
  const ping = (scenario: Run['scenario']) => async (port: number): Promise<{ run: Omit<Run, 'engine' | 'round'> }> => {
    const r = await pingPong(port, Math.max(1, D / 2));
    return { run: { scenario, p50_us: r.p50, p99_us: r.p99 } };
  };
  // port leads to the helper, which passes iperf3 on: through a tunnel the bulk
  // stream and the ping-pong share the client's single session (-c 1); direct,
  // they take the same path minus tws, so the baseline pays the helper's cost too.
  // Flat out, every process here fights for the two cores and the figures are
  // mostly scheduling delay; paced at 1 Gbit/s they show the tunnel's own queueing.
  const underLoad = (scenario: Run['scenario'], rate?: string) => async (port: number): Promise<{ run: Omit<Run, 'engine' | 'round'>; bytes: number }> => {
    const load = iperf(port, D + 2, { rate });
    await sleep(1000);
    const r = await pingPong(port, Math.max(1, D / 2));
    const b = await load;
    return { run: { scenario, p50_us: r.p50, p99_us: r.p99, gbps: b.gbps }, bytes: b.bytes };
  };
  // wss:// straight to `tws server --tls-cert`, and as deployed behind nginx,
  // which terminates TLS (example/nginx.conf) in front of the server; and the
  // same nginx without TLS: what the proxy's relaying costs by itself, so the
  // tls row's cost can be told apart from nginx's.
  const direct: Front = async (serverPort) => ({ url: `wss://localhost:${serverPort}/`, clientArgs: ['--ca', tls.ca], stop: async () => undefined });
  const viaNginx = (plain: boolean): Front => async (serverPort) => {
    const nginx = await startNginx(tls.dir, { cert: tls.cert, key: tls.key, location: exampleLocation(`127.0.0.1:${serverPort}`), plain });
    return { url: `${plain ? 'ws' : 'wss'}://localhost:${nginx.port}/some/path`, clientArgs: plain ? [] : ['--ca', tls.ca], pids: nginx.pids, stop: nginx.stop };
  };
  return (step) => {
    const d = step.direction;
    switch (step.scenario) {
      case 'throughput': return { label: `throughput ${d}`, target: 'iperf', clientArgs: ['-c', '1'], body: bulk('throughput', d) };
      case 'parallel': return {
        label: 'parallel -P 8', target: 'iperf', clientArgs: [],
        body: async (port) => { const r = await iperf(port, D, { parallel: 8 }); return { run: { scenario: 'parallel', gbps: r.gbps }, bytes: r.bytes }; },
      };
      case 'latency': return { label: 'latency', target: 'echo', clientArgs: ['-c', '1'], body: ping('latency') };
      // The same with --busy-poll on both ends: latency bought with CPU (the threads poll instead of sleeping).
      case 'latency_busy_poll': return {
        label: 'latency --busy-poll 1000', target: 'echo', clientArgs: ['-c', '1', '--busy-poll', '1000'], serverArgs: ['--busy-poll', '1000'], body: ping('latency_busy_poll'),
      };
      case 'latency_under_load': return { label: 'latency under load', target: 'echo', clientArgs: ['-c', '1'], body: underLoad('latency_under_load') };
      case 'latency_under_1g': return { label: 'latency under 1 Gbit/s load', target: 'echo', clientArgs: ['-c', '1'], body: underLoad('latency_under_1g', '1G') };
      case 'connect_rate': return {
        label: 'connect rate', target: 'connect', clientArgs: [],
        body: async (port) => {
          const t0 = Date.now();
          const cpu0 = cpuSeconds(echo.connectPid);
          const r = await load.run(port, Math.max(1, D / 2));
          const target_cpu = (cpuSeconds(echo.connectPid) - cpu0) / ((Date.now() - t0) / 1000);
          return { run: { scenario: 'connect_rate', conns_per_s: r.rate, loadgen_cpu: r.cpu, target_cpu } };
        },
      };
      // New streams through the client's SOCKS5 listener (-D) to the echo server: the -l tunnel's rate plus the SOCKS exchange.
      case 'connect_rate_socks': return {
        label: 'connect rate (SOCKS5)', target: 'echo', clientArgs: ['-D', '127.0.0.1:0'],
        body: async (_port, tunnel) => {
          const port = Number(/listening on 127\.0\.0\.1:(\d+) → SOCKS5/.exec(tunnel!.logs.client())![1]);
          return { run: { scenario: 'connect_rate_socks', conns_per_s: await connectRateSocks(port, echoTarget, Math.max(1, D / 2)) } };
        },
      };
      // Memory per stream: peak RSS of the tws processes with this many streams open and idle. Over -c 4: a
      // server gives one session at most a quarter of the streams its fd limit allows (src/server/fd-budget.ts),
      // so with a hard limit of 20000 fds two sessions hold about 7400 streams, four about 14800.
      case 'idle_streams': return {
        label: `${o.idleStreams} idle streams`, target: 'echo', clientArgs: ['-c', '4'],
        body: async (port) => ({ run: { scenario: 'idle_streams', streams: await idleStreams(port, o.idleStreams, () => sleep(1000)) } }),
      };
      case 'plain_ws': return { label: `plain ws ${d}`, target: 'iperf', clientArgs: ['-c', '1'], body: bulk('plain_ws', d) };
      case 'tls_direct': return {
        label: `tls (--tls-cert) ${d}`, target: 'iperf', clientArgs: ['-c', '1'], serverArgs: ['--tls-cert', tls.cert, '--tls-key', tls.key], front: direct,
        body: bulk('tls_direct', d),
      };
      case 'nginx_ws': return { label: `ws (nginx) ${d}`, target: 'iperf', clientArgs: ['-c', '1'], front: viaNginx(true), body: bulk('nginx_ws', d) };
      case 'tls': return { label: `tls (nginx) ${d}`, target: 'iperf', clientArgs: ['-c', '1'], front: viaNginx(false), body: bulk('tls', d) };
    }
  };
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (!hasIperf3()) {
    process.stderr.write('bench: iperf3 not found; install it with: apt-get install iperf3 (Debian/Ubuntu) or dnf install iperf3\n');
    process.exit(1);
  }
  const { ok: engines, skipped } = available(opts.engines);
  for (const s of skipped) process.stderr.write(`bench: engine ${s.engine} skipped: ${s.reason}\n`);
  if (!hasNginx) process.stderr.write('bench: nginx not found: the nginx scenarios (ws:// and wss:// through nginx) are skipped; apt-get install nginx\n');
  const plan = schedule(engines, opts.rounds, hasNginx, opts.peers.map((p) => p.name));
  steps = plan.length;
  const iperfPort = await freePort();
  const iperfServer = await start('iperf3', ['-s', '-p', String(iperfPort), '--forceflush'], /Server listening/);
  const echo = await startEcho(iperfPort);
  const dir = mkdtempSync(join(tmpdir(), 'tws-bench-'));
  const load = loadGenerator(dir);
  const connectEcho = load.bin ? await start(load.bin, ['serve'], /echo on (\d+)/) : undefined;
  const connect = connectEcho ? { port: Number(connectEcho.match[1]), pid: connectEcho.proc.pid! } : { port: echo.port, pid: echo.proc.pid! };
  const targets = { iperf: `127.0.0.1:${iperfPort}`, echo: `127.0.0.1:${echo.port}`, connect: `127.0.0.1:${connect.port}` };
  const runs: Run[] = [];
  const started = Date.now();
  try {
    const ca = makeCa(dir, 'bench-ca');
    const leaf = makeCert(dir, ca, 'bench-leaf', ['localhost']);
    const measurementOf = measurements(opts, { ca: ca.cert, cert: leaf.cert, key: leaf.key, dir }, { target: targets.echo, connectPid: connect.pid }, load);
    for (const step of plan) {
      const m = measurementOf(step);
      const target = targets[m.target];
      progress(`${m.label} · ${step.engine}${opts.rounds > 1 ? ` (round ${step.round}/${opts.rounds})` : ''}`);
      const { round, engine } = step;
      const peer = opts.peers.find((p) => p.name === engine);
      if (engine === 'direct') runs.push({ ...(await m.body(Number(target.split(':')[1]))).run, engine, round });
      else if (!peer) runs.push({ ...(await throughTunnel(engine, () => startTunnel(engine, target, m.clientArgs, m.front, m.serverArgs), (t) => m.body(t.port, t))), round });
      else {
        // Another project's tunnel may fail a measurement (tws-rust's sessions die under a long bulk
        // transfer): that is a result for its row, not a reason to stop.
        try {
          runs.push({ ...(await throughTunnel(engine, () => startPeer(peer, target, sessionsOf(m.clientArgs)), (t) => m.body(t.port, t))), round });
        } catch (err) {
          const why = printable((err as Error).message, 300);
          process.stderr.write(`bench: ${m.label} · ${engine} failed: ${why}\n`);
          runs.push({ scenario: step.scenario, engine, round, ...(step.direction ? { direction: step.direction } : {}), failed: why });
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await stop(iperfServer.proc);
    await stop(echo.proc);
    if (connectEcho) await stop(connectEcho.proc);
  }

  const report: Report = { version: VERSION, date: new Date().toISOString(), machine: machine(), runs, skipped, load_generator: load.describe };
  if (opts.peers.length) report.peers = opts.peers;
  const jsonPath = resolve(opts.json ?? join(__dirname, '..', '..', 'bench', 'results', `bench-${report.date.slice(0, 19).replace(/:/g, '-')}.json`));
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
  const svgPath = jsonPath.replace(/\.json$/, '') + '.svg';
  const m = report.machine;
  const D = opts.duration;
  const rounds = `${opts.rounds} round${opts.rounds > 1 ? 's' : ''}`;
  const peerNames = Object.fromEntries(opts.peers.map((p) => [p.name, `${p.name} (${p.version})`]));
  writeFileSync(svgPath, renderSvg(aggregate(runs), `tws-native ${VERSION} · ${m.cpus} × ${m.model} · Linux ${m.kernel} · Node ${m.node} · ${report.date.slice(0, 10)} · ${D} s runs · ${rounds}`, peerNames));
  process.stdout.write(`\ntws-native ${VERSION} on ${m.cpus} × ${m.model}, Linux ${m.kernel}, Node ${m.node}, ${D} s per run, ${rounds}\n`);
  for (const p of opts.peers) process.stdout.write(`peer ${p.name}: ${p.version} (${p.path}), ${p.flags}\n`);
  process.stdout.write(`connection rates: ${load.describe}\n\n`);
  process.stdout.write(table(runs) + '\n\n');
  for (const s of skipped) process.stdout.write(`skipped: ${s.engine} (${s.reason})\n`);
  process.stdout.write(`results: ${jsonPath}\nchart:   ${svgPath}\n(${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`bench: could not run: ${err.message}\n`);
  process.exit(1);
});
