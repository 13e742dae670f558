/**
 * `npm run bench -- --peer NAME=PATH` with the real peer binaries: wstunnel
 * (and tws-rust where present) beside direct, in the same rounds, in the
 * table, JSON and chart. Its own file: the whole-bench run in bench.test.ts
 * already takes most of a file's time budget.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../helpers/tools';
import { needsPeer, peerBin } from '../helpers/peer-bin';
import { BenchRun, runBench } from '../helpers/bench-cli';


const bench = (args: string[]): Promise<BenchRun> => runBench(args, 150_000);

type R = { scenario: string; engine: string; direction?: string; round: number; failed?: string; gbps?: number; p50_us?: number; conns_per_s?: number;
  rss_mb?: number; cpu_s_per_gb?: number; switches_per_gb?: number; loadgen_cpu?: number; target_cpu?: number; streams?: number };

const wstunnel = peerBin('WSTUNNEL_BIN', 'wstunnel');
const twsRust = peerBin('TWS_RUST_BIN', 'tws-rust');
const name = 'peers join direct in every round: throughput, -P 8, CPU/GB, round trip, connect rate, idle streams; table, JSON and chart name them';
const skip = needs('iperf3') || needsPeer('WSTUNNEL_BIN', 'wstunnel');
t.test(name, { skip }, async (t) => {
  const dir = t.testdir({});
  const json = join(dir, 'run.json');
  const peers = [['wstunnel', wstunnel!], ...(twsRust ? [['tws-rust', twsRust]] : [])];
  // No tws engine: direct and the peers only, to keep the run short.
  const r = await bench(['--engines', '', '--duration', '1', '--rounds', '2', '--idle-streams', '200', '--json', json, ...peers.flatMap(([n, p]) => ['--peer', `${n}=${p}`])]);
  if (!t.equal(r.code, 0, 'exits 0')) t.comment(r.err);
  const report = JSON.parse(readFileSync(json, 'utf8')) as { runs: R[]; peers: { name: string; path: string; version: string; flags: string }[]; load_generator: string };
  t.match(report.peers[0], { name: 'wstunnel', path: wstunnel, version: /wstunnel/, flags: /--websocket-mask-frame/ }, 'the peer, its version and flags in the JSON');
  const ws = report.runs.filter((x) => x.engine === 'wstunnel');
  const key = (x: R): string => `${x.scenario}${x.direction ? ` ${x.direction}` : ''}`;
  t.same([...new Set(ws.map(key))], ['throughput forward', 'throughput reverse', 'parallel', 'latency', 'connect_rate', 'idle_streams'], 'wstunnel in every row it can be compared in');
  t.same(ws.filter((x) => x.failed).map((x) => `${key(x)}: ${x.failed}`), [], 'no wstunnel measurement failed');
  for (const x of ws.filter((w) => w.scenario === 'throughput' || w.scenario === 'parallel')) {
    t.ok(x.gbps! > 0 && x.cpu_s_per_gb! > 0 && x.switches_per_gb! > 0 && x.rss_mb! > 0, `${key(x)} round ${x.round}: Gbit/s, CPU/GB, switches/GB and RSS of both wstunnel processes`);
  }
  t.ok(ws.filter((x) => x.scenario === 'latency').every((x) => x.p50_us! > 0), 'round trips');
  t.match(ws.find((x) => x.scenario === 'idle_streams'), { streams: 200, rss_mb: Number }, 'RSS with idle streams');
  for (const x of report.runs.filter((y) => y.scenario === 'connect_rate')) {
    t.ok(x.conns_per_s! > 0 && x.loadgen_cpu! > 0 && x.target_cpu! > 0, `connect_rate ${x.engine} round ${x.round}: rate, and the CPU of load generator and echo target`);
  }
  t.match(report.load_generator, /connect-load\.c/, 'the report says what made the connections');
  // In each round the contenders measure a scenario back to back, in a rotating order.
  for (const round of [1, 2]) {
    const inRound = report.runs.filter((x) => x.round === round);
    const at = inRound.map((x, i) => (key(x) === 'throughput forward' ? i : -1)).filter((i) => i >= 0);
    t.same(at, at.map((_, k) => at[0]! + k), `round ${round}: throughput forward back to back`);
    t.equal(inRound[at[0]!]!.engine, round === 1 ? 'direct' : 'wstunnel', `round ${round} starts with ${round === 1 ? 'direct' : 'wstunnel'}`);
  }
  // tws-rust may lose its session under a bulk run: then the row records why, and the bench goes on.
  for (const x of report.runs.filter((y) => y.engine === 'tws-rust')) {
    t.ok(x.failed !== undefined || x.gbps! > 0 || x.p50_us! > 0 || x.conns_per_s! > 0 || x.rss_mb! > 0, `tws-rust ${key(x)} round ${x.round}: figures or why not`);
  }
  t.match(r.out, /^peer wstunnel: wstunnel-cli \S+ .*--websocket-mask-frame/m, 'the table header names the peer, its version and flags');
  t.match(r.out, /^throughput forward\s+wstunnel\s+[\d.]+ \([\d.]+–[\d.]+\)\s+[\d.]+x/m, 'the table has its rows, with the ratio to direct');
  t.match(r.out, /^connect_rate · direct: load generator [\d.]+ \([\d.]+–[\d.]+\) cores, echo target/m, 'the table says what the load generator used');
  const svg = readFileSync(json.replace(/\.json$/, '.svg'), 'utf8');
  t.match(svg, /<title>throughput forward · wstunnel — Throughput: /, 'the chart has its bars');
  t.match(svg, />wstunnel \(wstunnel-cli [^<]+\)</, 'the legend names its version');
  // Told by an environment mark the run's children inherit, not by name: another bench test may run beside it.
  t.same(r.leftovers(), [], 'nothing the run started is left running');
});

t.test('an unknown peer, or a binary that does not run, is one error line before anything starts', async (t) => {
  for (const [args, expected] of [
    [['--peer', 'chisel=/bin/true'], /^bench: --peer chisel: unknown peer; the bench knows how to start wstunnel, wstunnel-unmasked, tws-rust\n$/],
    [['--peer', 'wstunnel=/nonexistent/wstunnel'], /^bench: --peer wstunnel=\/nonexistent\/wstunnel: does not run \(.*ENOENT\)\n$/],
    [['--peer', `wstunnel=${process.execPath}`], /^bench: --peer wstunnel=.*: --version says "v\d+[^"]*", not wstunnel\n$/],
    [['--peer', 'wstunnel'], /^bench: --peer wants NAME=PATH/],
  ] as [string[], RegExp][]) {
    const r = await bench(['--quick', ...args]);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.err, expected, `${args.join(' ')}: one line`);
    t.equal(r.out, '', 'nothing measured');
  }
});
