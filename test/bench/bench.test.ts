import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../helpers/tools';
import { BenchRun, runBench } from '../helpers/bench-cli';

const BENCH = join(__dirname, '..', '..', 'dist', 'bench', 'main.js');
const missing = needs('iperf3', 'openssl', 'pgrep');

const bench = (args: string[]): Promise<BenchRun> => runBench(args, 170_000);

const fullRun = 'a short benchmark run measures every scenario, writes JSON and an SVG chart, and cleans up';
if (!missing) {
  t.test(fullRun, async (t) => {
    const dir = t.testdir({});
    const json = join(dir, 'run.json');
    const r = await bench(['--duration', '1', '--idle-streams', '300', '--rounds', '1', '--json', json]);
    if (!t.equal(r.code, 0, 'exits 0')) t.comment(r.err);
    const report = JSON.parse(readFileSync(json, 'utf8'));
    t.match(report, { version: String, machine: { cpus: Number, model: String, kernel: String, node: String } });
    const engines = ['direct', ...report.runs.map((x: { engine: string }) => x.engine).filter((e: string) => e !== 'direct')];
    for (const engine of new Set(engines)) {
      const runs = report.runs.filter((x: { engine: string }) => x.engine === engine);
      const of = (s: string) => runs.filter((x: { scenario: string }) => x.scenario === s);
      t.same(of('throughput').map((x: { direction: string }) => x.direction).sort(), ['forward', 'reverse'], `${engine}: both directions`);
      for (const x of [...of('throughput'), ...of('parallel')]) t.ok(x.gbps > 0, `${engine} ${x.scenario}: ${x.gbps} Gbit/s`);
      for (const x of [...of('latency'), ...of('latency_under_load'), ...of('latency_under_1g')]) t.ok(x.p50_us > 0 && x.p99_us >= x.p50_us, `${engine} ${x.scenario}: p50 ${x.p50_us} µs`);
      t.ok(of('latency_under_1g')[0]?.gbps > 0.3, `${engine}: the paced load ran (${of('latency_under_1g')[0]?.gbps} Gbit/s)`);
      t.ok(of('connect_rate')[0]?.conns_per_s > 0, `${engine}: connect rate`);
      t.match(of('connect_rate')[0], { loadgen_cpu: Number, target_cpu: Number }, `${engine}: what the load generator and the echo target used`);
      if (engine !== 'direct') {
        t.match(of('idle_streams')[0], { streams: 300, rss_mb: Number }, `${engine}: RSS with 300 idle streams`);
        t.ok(of('throughput').every((x: { rss_mb: number; cpu_s_per_gb: number }) => x.rss_mb > 0 && x.cpu_s_per_gb > 0), `${engine}: RSS and CPU/GB`);
        // A GB through two processes cannot pass without their threads sleeping and waking at all.
        t.ok(of('throughput').every((x: { switches_per_gb: number }) => x.switches_per_gb > 0), `${engine}: context switches per GB`);
      }
    }
    const viaNginx = report.runs.filter((x: { scenario: string }) => x.scenario === 'tls' || x.scenario === 'nginx_ws');
    if (!needs('nginx')) {
      t.same([...new Set(viaNginx.map((x: { scenario: string }) => x.scenario))].sort(), ['nginx_ws', 'tls'], 'ws:// and wss:// through nginx');
      t.ok(viaNginx.every((x: { gbps: number; front_cpu_s_per_gb: number }) => x.gbps > 0 && x.front_cpu_s_per_gb > 0), "nginx's CPU per GB is counted");
      t.match(r.out, /tls forward · \w+: [\d.]+x plain ws:\/\/, [\d.]+x ws:\/\/ through the same nginx/, 'the tls rows compare with ws:// through nginx');
    }
    // The wss:// and nginx runs sit in a round with their own plain ws:// run.
    type R = { scenario: string; engine: string; direction: string; round: number };
    const paired = report.runs.filter((x: R) => ['plain_ws', 'tls_direct', 'nginx_ws', 'tls'].includes(x.scenario)) as R[];
    t.ok(paired.some((x) => x.scenario === 'plain_ws') && paired.every((x) => x.round === 1), 'the wss:// and nginx runs are in round 1, beside a plain ws:// run');
    t.ok(report.runs.every((x: R) => x.round === 1), 'every run, direct and the headline rows too, is in round 1');
    // Within a round the engines measure each scenario back to back.
    const at = report.runs.map((x: R, i: number) => (x.scenario === 'throughput' && x.direction === 'forward' ? i : -1)).filter((i: number) => i >= 0);
    t.same(at, at.map((_: number, k: number) => at[0] + k), 'throughput forward: direct and the engines one after another');
    t.ok(report.runs.some((x: { engine: string }) => x.engine === 'js'), 'the js engine was measured');
    const native = report.runs.some((x: { engine: string }) => x.engine === 'native') || report.skipped.some((s: { engine: string }) => s.engine === 'native');
    t.ok(native, 'native was measured or listed as skipped');
    const svg = readFileSync(json.replace(/\.json$/, '.svg'), 'utf8');
    t.match(svg, /^<svg /);
    for (const panel of ['Throughput', 'wss:// and nginx, client → server', 'Round trip, 64 B, p50', 'Round trip, 64 B, p99', 'Connections/s', 'Peak RSS', 'CPU per GB']) {
      t.ok(svg.includes(`>${panel}`), `chart panel ${panel}`);
    }
    t.match(r.out, /throughput forward\s+js\s+[\d.]+\s+[\d.]+x/, 'the table shows the ratio to direct');
    t.match(report.load_generator, /connect-load\.c built with/, 'connections come from the compiled load generator');
    t.match(r.out, /^connect_rate · direct: load generator [\d.]+ cores, echo target [\d.]+ cores$/m, 'the table says what it used');
    t.match(r.err, /\[\d+\/\d+\] throughput forward · direct/, 'progress lines');
    // Nothing it started is left running (told by an environment mark, not by name: another bench test may run beside it).
    t.same(r.leftovers(), [], 'nothing the run started is left running');
  });
} else {
  t.test(fullRun, { skip: missing }, () => undefined);
}
if (needs('iperf3')) {
  t.test('without iperf3 the benchmark says which package installs it', async (t) => {
    const r = await bench(['--quick']);
    t.equal(r.code, 1);
    t.match(r.err, /iperf3 not found; install it with: apt-get install iperf3/);
  });
}

t.test('the benchmark rejects a bad --duration with one line', async (t) => {
  const r = await bench(['--duration', 'x']);
  t.equal(r.code, 2);
  t.match(r.err, /--duration must be a number of seconds/);
  t.ok(existsSync(BENCH));
});
