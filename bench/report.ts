/** Benchmark result types, the JSON document and the printed table. */
import { cpus, release } from 'node:os';
import type { Peer, PeerName } from './peers';

export type Scenario = 'throughput' | 'parallel' | 'latency' | 'latency_busy_poll' | 'latency_under_load' | 'latency_under_1g' | 'connect_rate' | 'connect_rate_socks' | 'idle_streams' | 'tls' | 'tls_direct' | 'nginx_ws' | 'plain_ws';
/** What carries the bytes: nothing (direct), a tws engine, or another tunnel (`--peer`, see peers.ts). */
export type EngineName = 'direct' | 'native' | 'js' | PeerName;

export interface Run {
  scenario: Scenario;
  engine: EngineName;
  direction?: 'forward' | 'reverse';
  gbps?: number;
  p50_us?: number;
  p99_us?: number;
  conns_per_s?: number;
  /** idle_streams: how many were held open while rss_mb was measured. */
  streams?: number;
  rss_mb?: number;
  cpu_s_per_gb?: number;
  /** Context switches (every thread of the server and client processes) per GB moved: how often they slept and were woken. */
  switches_per_gb?: number;
  /** Scenarios through nginx: CPU seconds per GB of the nginx processes (not in cpu_s_per_gb). */
  front_cpu_s_per_gb?: number;
  /** Which round of the benchmark measured it (every scenario runs once per round; see plan.ts). */
  round?: number;
  /** connect_rate: CPU the load generator used, in cores (CPU seconds per second of the run). */
  loadgen_cpu?: number;
  /** connect_rate: CPU the echo target used, in cores. */
  target_cpu?: number;
  /** A peer's measurement that did not complete: why (no figures then). */
  failed?: string;
}

export interface Report {
  version: string;
  date: string;
  machine: { cpus: number; model: string; kernel: string; node: string };
  runs: Run[];
  skipped: { engine: string; reason: string }[];
  /** Other tunnels measured beside tws: binary, version, flags. */
  peers?: Peer[];
  /** What made the connections of the connect_rate rows. */
  load_generator?: string;
}

export function machine(): Report['machine'] {
  const c = cpus();
  return { cpus: c.length, model: c[0]?.model.trim() ?? 'unknown', kernel: release(), node: process.version };
}

/** The figures a run may have, each reported as the median over its rounds with their range. */
export const FIGURES = ['gbps', 'p50_us', 'p99_us', 'conns_per_s', 'rss_mb', 'cpu_s_per_gb', 'switches_per_gb', 'front_cpu_s_per_gb', 'loadgen_cpu', 'target_cpu'] as const;
export type Figure = (typeof FIGURES)[number];

/** One figure over the rounds that measured it. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** How many rounds gave it. */
  n: number;
}

/** One scenario, engine and direction over all its rounds: a row of the table, a bar of the chart. */
export interface Row {
  scenario: Scenario;
  engine: EngineName;
  direction?: 'forward' | 'reverse';
  streams?: number;
  rounds: number;
  figures: Partial<Record<Figure, Spread>>;
  /** Throughput as a share of the direct connection's, taken within each round. */
  vsDirect?: Spread;
  /** Rounds whose measurement failed (a peer's), each as `round N: why`. */
  failed?: string[];
}

const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};

/** Median, least and greatest of `xs` (not empty). */
export function spread(xs: number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/** `median`, or `median (min–max)` when several rounds gave it; `digits` after the point, `suffix` after the median. */
export function formatSpread(s: Spread | undefined, digits: number, suffix = ''): string {
  if (!s || Number.isNaN(s.median)) return '';
  const m = s.median.toFixed(digits) + suffix;
  return s.n > 1 ? `${m} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})` : m;
}

/** The runs of each scenario, engine and direction (its rounds), in order of first appearance. */
function byScenario(runs: Run[]): Run[][] {
  const groups = new Map<string, Run[]>();
  for (const r of runs) {
    const key = `${r.scenario}/${r.engine}/${r.direction ?? ''}/${r.streams ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()];
}

/** What the tunnel engines are measured through on top of plain ws://: wss:// to the server, and nginx in front. */
export const FRONT_SCENARIOS = ['tls_direct', 'nginx_ws', 'tls'] as const;

/** The wss:// and nginx scenarios and their plain ws:// baseline: throughput compared with direct's plain one. */
const wsLike = (s: Scenario): boolean => s === 'plain_ws' || (FRONT_SCENARIOS as readonly Scenario[]).includes(s);

/** One row per scenario, engine and direction: each figure's median and range over its rounds. */
export function aggregate(runs: Run[]): Row[] {
  const directIn = (r: Run): Run | undefined => runs.find((d) => d.engine === 'direct' && d.round === r.round &&
    d.scenario === (wsLike(r.scenario) ? 'throughput' : r.scenario) && d.direction === r.direction);
  return byScenario(runs).map((g) => {
    const { scenario, engine, direction, streams } = g[0]!;
    const row: Row = { scenario, engine, rounds: g.length, figures: {}, ...(direction ? { direction } : {}), ...(streams ? { streams } : {}) };
    for (const f of FIGURES) {
      const xs = g.map((r) => r[f]).filter((v): v is number => v !== undefined && !Number.isNaN(v));
      if (xs.length) row.figures[f] = spread(xs);
    }
    if (engine !== 'direct') {
      const ratios = g.flatMap((r) => {
        const d = directIn(r)?.gbps;
        return d && r.gbps !== undefined ? [r.gbps / d] : [];
      });
      if (ratios.length) row.vsDirect = spread(ratios);
    }
    const failed = g.filter((r) => r.failed !== undefined).map((r) => `round ${r.round ?? 1}: ${r.failed}`);
    if (failed.length) row.failed = failed;
    return row;
  });
}

/**
 * How a wss:// or nginx scenario compares with plain ws:// (and tls with ws://
 * through the same nginx): the median of the ratios within each round, and
 * their range when there were several rounds.
 */
function ratioNotes(runs: Run[]): string[] {
  const inRound = (scenario: Scenario, r: Run): Run | undefined =>
    runs.find((p) => p.scenario === scenario && p.engine === r.engine && p.direction === r.direction && p.round === r.round);
  const notes: string[] = [];
  for (const g of byScenario(runs.filter((x) => x.scenario !== 'plain_ws' && wsLike(x.scenario)))) {
    const r = g[0]!;
    const ratios = (base: Scenario): number[] => g.flatMap((x) => {
      const b = inRound(base, x);
      return b?.gbps && x.gbps !== undefined ? [x.gbps / b.gbps] : [];
    });
    const plain = ratios('plain_ws');
    if (!plain.length) continue;
    const viaNginx = r.scenario === 'tls' ? ratios('nginx_ws') : [];
    const rounds = plain.length > 1 ? ` (median of ${plain.length} rounds; against plain ws:// ${Math.min(...plain).toFixed(2)}–${Math.max(...plain).toFixed(2)}x)` : '';
    notes.push(`${r.scenario} ${r.direction} · ${r.engine}: ${median(plain).toFixed(2)}x plain ws://` +
      (viaNginx.length ? `, ${median(viaNginx).toFixed(2)}x ws:// through the same nginx` : '') + rounds);
  }
  return notes;
}

/**
 * A plain-text table, one row per scenario, engine and direction: each
 * figure's median with its range over the rounds, throughput also as a
 * share of direct's within each round; then the wss:// and nginx ratios.
 */
export function table(all: Run[]): string {
  const rows = aggregate(all);
  const head = ['scenario', 'engine', 'Gbit/s', 'x direct', 'p50 µs', 'p99 µs', 'conn/s', 'peak RSS MB', 'CPU s/GB', 'switches/GB', 'nginx s/GB'];
  const cells = rows.map((r) => {
    const f = r.figures;
    return [
      rowName(r), r.failed ? `${r.engine} (failed ${r.failed.length}/${r.rounds})` : r.engine, formatSpread(f.gbps, 2), formatSpread(r.vsDirect, 2, 'x'), formatSpread(f.p50_us, 0), formatSpread(f.p99_us, 0),
      formatSpread(f.conns_per_s, 0), formatSpread(f.rss_mb, 0), formatSpread(f.cpu_s_per_gb, 2), formatSpread(f.switches_per_gb, 0), formatSpread(f.front_cpu_s_per_gb, 2),
    ];
  });
  const lines = [head, ...cells];
  const widths = head.map((_, i) => Math.max(...lines.map((r) => r[i]!.length)));
  const text = lines.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
  const most = Math.max(0, ...rows.map((r) => r.rounds));
  const intro = most > 1 ? `median (least–greatest) of ${most} rounds; x direct: the ratios within each round\n\n` : '';
  const notes = [...ratioNotes(all), ...peerNotes(all), ...loadNotes(rows), ...rows.flatMap((r) => (r.failed ?? []).map((f) => `${rowName(r)} · ${r.engine} failed in ${f}`))];
  return intro + (notes.length ? `${text}\n\n${notes.join('\n')}` : text);
}

/** What tws is compared with a peer in: scenario, direction, figure, and how the note names it. */
const VERSUS: [Scenario, Run['direction'], Figure, string][] = [
  ['throughput', 'forward', 'gbps', 'Gbit/s →'], ['throughput', 'reverse', 'gbps', 'Gbit/s ←'], ['parallel', undefined, 'gbps', 'Gbit/s -P 8'],
  ['throughput', 'forward', 'cpu_s_per_gb', 'CPU s/GB →'], ['throughput', 'reverse', 'cpu_s_per_gb', 'CPU s/GB ←'], ['parallel', undefined, 'cpu_s_per_gb', 'CPU s/GB -P 8'],
  ['throughput', 'forward', 'switches_per_gb', 'switches/GB →'], ['throughput', 'reverse', 'switches_per_gb', 'switches/GB ←'],
  ['latency', undefined, 'p50_us', 'p50'], ['latency', undefined, 'p99_us', 'p99'],
  ['connect_rate', undefined, 'conns_per_s', 'conn/s'], ['idle_streams', undefined, 'rss_mb', 'idle-streams RSS'],
];

/**
 * Each tws engine against each peer (`--peer`): the median of the ratios
 * within rounds, figure by figure, e.g. `native / wstunnel: Gbit/s → 0.91x, …`.
 */
function peerNotes(runs: Run[]): string[] {
  const engines = [...new Set(runs.map((r) => r.engine))];
  const tws: EngineName[] = engines.filter((e) => e === 'native' || e === 'js');
  const peers = engines.filter((e) => e !== 'direct' && !tws.includes(e));
  const notes: string[] = [];
  for (const e of tws) {
    for (const p of peers) {
      const parts = VERSUS.flatMap(([scenario, direction, figure, name]) => {
        const of = (engine: EngineName): Run[] => runs.filter((r) => r.engine === engine && r.scenario === scenario && r.direction === direction && r[figure] !== undefined);
        const theirs = of(p);
        const ratios = of(e).flatMap((r) => {
          const q = theirs.find((x) => x.round === r.round)?.[figure];
          return q ? [r[figure]! / q] : [];
        });
        return ratios.length ? [`${name} ${median(ratios).toFixed(2)}x`] : [];
      });
      if (parts.length) notes.push(`${e} / ${p}, median of the ratios within rounds: ${parts.join(', ')}`);
    }
  }
  return notes;
}

/** What the connection-rate load generator and the echo target used while each engine was measured: the generator must not be the limit. */
function loadNotes(rows: Row[]): string[] {
  const cores = (s: Spread | undefined): string => formatSpread(s, 2) || '?';
  return rows.filter((r) => r.scenario === 'connect_rate' && r.figures.loadgen_cpu)
    .map((r) => `connect_rate · ${r.engine}: load generator ${cores(r.figures.loadgen_cpu)} cores, echo target ${cores(r.figures.target_cpu)} cores`);
}

/** A row's name in the table, e.g. `throughput forward` or `idle_streams 10000`. */
export function rowName(r: Pick<Row, 'scenario' | 'direction' | 'streams'>): string {
  return r.scenario + (r.direction ? ` ${r.direction}` : '') + (r.streams ? ` ${r.streams}` : '');
}
