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
import { connectRate, idleStreams, iperf, pingPong } from './measure';
import { makeCa, makeCert } from './certs';
import { exampleLocation, hasNginx, startNginx } from './nginx';
import { cpuSeconds, freePort, Front, hasIperf3, peakRssMiB, start, startEcho, startTunnel, stop, Tunnel } from './procs';
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
}

function parseArgs(argv: string[]): Options {
  const cmd = new Command('npm run bench --')
    .description('Benchmark tws-native against a direct loopback connection (needs iperf3)')
    .option('--quick', 'short runs: the whole benchmark in under a minute')
    .option('--duration <s>', 'seconds per measurement (default 10, or 2 with --quick)')
    .option('--engines <list>', 'engines to measure, comma-separated', 'native,js')
    .option('--json <file>', 'write results here (default bench/results/bench-<date>.json); the SVG goes next to it')
    .option('--idle-streams <n>', 'idle streams held open for the memory scenario (default 10000, or 2000 with --quick)')
    .option('--rounds <n>', 'rounds of the wss:// and nginx scenarios, each beside its own plain ws:// run (default 3, or 1 with --quick)')
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
  return { quick: !!o.quick, duration, engines: String(o.engines).split(',').map((e) => e.trim()).filter(Boolean), json: o.json, idleStreams: idle, rounds };
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

/** Measures a scenario through a fresh tunnel, adding peak RSS and CPU per GB of the tws processes. */
async function throughTunnel(engine: EngineName, target: string, clientArgs: string[],
  body: (t: Tunnel) => Promise<{ run: Omit<Run, 'engine'>; bytes?: number }>, front?: Front, serverArgs: string[] = []): Promise<Run> {
  const t = await startTunnel(engine, target, clientArgs, front, serverArgs);
  try {
    const pids = [t.server.pid!, t.client.pid!];
    const frontPids = t.frontPids();
    const cpuOf = (list: number[]): number => list.reduce((n, p) => n + cpuSeconds(p), 0);
    const cpu0 = cpuOf(pids);
    const frontCpu0 = cpuOf(frontPids);
    const { run, bytes } = await body(t);
    const cpu = cpuOf(pids) - cpu0;
    const out: Run = { ...run, engine, rss_mb: pids.reduce((n, p) => n + peakRssMiB(p), 0) };
    if (bytes) out.cpu_s_per_gb = cpu / (bytes / 1e9);
    if (bytes && frontPids.length) out.front_cpu_s_per_gb = (cpuOf(frontPids) - frontCpu0) / (bytes / 1e9);
    return out;
  } finally {
    await t.stop();
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (!hasIperf3()) {
    process.stderr.write('bench: iperf3 not found; install it with: apt-get install iperf3 (Debian/Ubuntu) or dnf install iperf3\n');
    process.exit(1);
  }
  const { ok: engines, skipped } = available(opts.engines);
  for (const s of skipped) process.stderr.write(`bench: engine ${s.engine} skipped: ${s.reason}\n`);
  const D = opts.duration;
  const iperfPort = await freePort();
  const iperfServer = await start('iperf3', ['-s', '-p', String(iperfPort), '--forceflush'], /Server listening/);
  const echo = await startEcho(iperfPort);
  const iperfTarget = `127.0.0.1:${iperfPort}`;
  const echoTarget = `127.0.0.1:${echo.port}`;
  const all: EngineName[] = ['direct', ...engines];
  const kindCount = hasNginx ? 3 : 1;
  steps = all.length * 7 + engines.length * (1 + opts.rounds * (1 + kindCount) * 2) + (engines.includes('native') ? 1 : 0);
  if (!hasNginx) process.stderr.write('bench: nginx not found: the nginx scenarios (ws:// and wss:// through nginx) are skipped; apt-get install nginx\n');
  const runs: Run[] = [];
  const started = Date.now();
  try {
    for (const engine of all) {
      const viaTunnel = engine !== 'direct';
      const measure = async (name: string, target: string, clientArgs: string[],
        body: (port: number) => Promise<{ run: Omit<Run, 'engine'>; bytes?: number }>): Promise<void> => {
        progress(`${name} · ${engine}`);
        const run = viaTunnel
          ? await throughTunnel(engine, target, clientArgs, (t) => body(t.port))
          : { ...(await body(Number(target.split(':')[1]))).run, engine };
        runs.push(run);
      };
      for (const direction of ['forward', 'reverse'] as const) {
        await measure(`throughput ${direction}`, iperfTarget, ['-c', '1'], async (port) => {
          const r = await iperf(port, D, { reverse: direction === 'reverse' });
          return { run: { scenario: 'throughput', direction, gbps: r.gbps }, bytes: r.bytes };
        });
      }
      await measure('parallel -P 8', iperfTarget, [], async (port) => {
        const r = await iperf(port, D, { parallel: 8 });
        return { run: { scenario: 'parallel', gbps: r.gbps }, bytes: r.bytes };
      });
      await measure('latency', echoTarget, ['-c', '1'], async (port) => {
        const r = await pingPong(port, Math.max(1, D / 2));
        return { run: { scenario: 'latency', p50_us: r.p50, p99_us: r.p99 } };
      });
      if (engine === 'native') {
        // The same with --busy-poll on both ends: latency bought with CPU (the threads poll instead of sleeping).
        progress('latency --busy-poll 1000 · native');
        runs.push(await throughTunnel(engine, echoTarget, ['-c', '1', '--busy-poll', '1000'], async (t) => {
          const r = await pingPong(t.port, Math.max(1, D / 2));
          return { run: { scenario: 'latency_busy_poll', p50_us: r.p50, p99_us: r.p99 } };
        }, undefined, ['--busy-poll', '1000']));
      }
      // port leads to the helper, which passes iperf3 on: through a tunnel the bulk
      // stream and the ping-pong share the client's single session (-c 1); direct,
      // they take the same path minus tws, so the baseline pays the helper's cost too.
      // Flat out, every process here fights for the two cores and the figures are
      // mostly scheduling delay; paced at 1 Gbit/s they show the tunnel's own queueing.
      for (const [scenario, label, rate] of [['latency_under_load', 'latency under load', undefined],
        ['latency_under_1g', 'latency under 1 Gbit/s load', '1G']] as const) {
        await measure(label, echoTarget, ['-c', '1'], async (port) => {
          const bulk = iperf(port, D + 2, { rate });
          await new Promise((r) => setTimeout(r, 1000));
          const r = await pingPong(port, Math.max(1, D / 2));
          const b = await bulk;
          return { run: { scenario, p50_us: r.p50, p99_us: r.p99, gbps: b.gbps }, bytes: b.bytes };
        });
      }
      await measure('connect rate', echoTarget, [], async (port) => {
        const cps = await connectRate(port, Math.max(1, D / 2));
        return { run: { scenario: 'connect_rate', conns_per_s: cps } };
      });
      if (viaTunnel) {
        // Memory per stream: peak RSS of the tws processes with this many streams open and idle.
        await measure(`${opts.idleStreams} idle streams`, echoTarget, [], async (port) => {
          const n = await idleStreams(port, opts.idleStreams, () => new Promise((r) => setTimeout(r, 1000)));
          return { run: { scenario: 'idle_streams', streams: n } };
        });
      }
    }
    // wss:// straight to `tws server --tls-cert`, and as deployed behind nginx,
    // which terminates TLS (example/nginx.conf) in front of the server.
    const dir = mkdtempSync(join(tmpdir(), 'tws-bench-tls-'));
    try {
      const ca = makeCa(dir, 'bench-ca');
      const leaf = makeCert(dir, ca, 'bench-leaf', ['localhost']);
      const direct: Front = async (serverPort) =>
        ({ url: `wss://localhost:${serverPort}/`, clientArgs: ['--ca', ca.cert], stop: async () => undefined });
      const viaNginx = (plain: boolean): Front => async (serverPort) => {
        const nginx = await startNginx(dir, { cert: leaf.cert, key: leaf.key, location: exampleLocation(`127.0.0.1:${serverPort}`), plain });
        return plain
          ? { url: `ws://localhost:${nginx.port}/some/path`, clientArgs: [], pids: nginx.pids, stop: nginx.stop }
          : { url: `wss://localhost:${nginx.port}/some/path`, clientArgs: ['--ca', ca.cert], pids: nginx.pids, stop: nginx.stop };
      };
      type Kind = [Run['scenario'], string, Front | undefined, string[]];
      const kinds: Kind[] = [
        ['tls_direct', 'tls (--tls-cert)', direct, ['--tls-cert', leaf.cert, '--tls-key', leaf.key]],
        // The same nginx without TLS: what the proxy's relaying costs by itself,
        // so the tls row's cost can be told apart from nginx's.
        ...(hasNginx ? [['nginx_ws', 'ws (nginx)', viaNginx(true), []], ['tls', 'tls (nginx)', viaNginx(false), []]] as Kind[] : []),
      ];
      // Throughput moves by a third from one minute to the next here, so each
      // round measures plain ws:// right before these, and the report gives the
      // median of the ratios within rounds rather than one against a run made
      // minutes earlier.
      const plainKind: Kind = ['plain_ws', 'plain ws', undefined, []];
      for (const engine of engines) {
        for (const direction of ['forward', 'reverse'] as const) {
          for (let round = 1; round <= opts.rounds; round++) {
            for (const [scenario, label, front, serverArgs] of [plainKind, ...kinds]) {
              progress(`${label} ${direction} · ${engine}${opts.rounds > 1 ? ` (round ${round}/${opts.rounds})` : ''}`);
              runs.push(await throughTunnel(engine, iperfTarget, ['-c', '1'], async (t) => {
                const r = await iperf(t.port, D, { reverse: direction === 'reverse' });
                return { run: { scenario, direction, gbps: r.gbps, round }, bytes: r.bytes };
              }, front, serverArgs));
            }
          }
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await stop(iperfServer.proc);
    await stop(echo.proc);
  }

  const report: Report = { version: VERSION, date: new Date().toISOString(), machine: machine(), runs, skipped };
  const jsonPath = resolve(opts.json ?? join(__dirname, '..', '..', 'bench', 'results', `bench-${report.date.slice(0, 19).replace(/:/g, '-')}.json`));
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
  const svgPath = jsonPath.replace(/\.json$/, '') + '.svg';
  const m = report.machine;
  writeFileSync(svgPath, renderSvg(aggregate(runs), `tws-native ${VERSION} · ${m.cpus} × ${m.model} · Linux ${m.kernel} · Node ${m.node} · ${report.date.slice(0, 10)} · ${D} s runs`));
  process.stdout.write(`\ntws-native ${VERSION} on ${m.cpus} × ${m.model}, Linux ${m.kernel}, Node ${m.node}, ${D} s per run\n\n`);
  process.stdout.write(table(runs) + '\n\n');
  for (const s of skipped) process.stdout.write(`skipped: ${s.engine} (${s.reason})\n`);
  process.stdout.write(`results: ${jsonPath}\nchart:   ${svgPath}\n(${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`bench: could not run: ${err.message}\n`);
  process.exit(1);
});
