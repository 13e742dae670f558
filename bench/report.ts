/** Benchmark result types, the JSON document and the printed table. */
import { cpus, release } from 'node:os';

export type Scenario = 'throughput' | 'parallel' | 'latency' | 'latency_busy_poll' | 'latency_under_load' | 'latency_under_1g' | 'connect_rate' | 'idle_streams' | 'tls' | 'tls_direct' | 'nginx_ws' | 'plain_ws';
export type EngineName = 'direct' | 'native' | 'js';

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
  /** Scenarios through nginx: CPU seconds per GB of the nginx processes (not in cpu_s_per_gb). */
  front_cpu_s_per_gb?: number;
  /** The wss:// and nginx scenarios run in rounds, each with its own plain_ws run. */
  round?: number;
}

export interface Report {
  version: string;
  date: string;
  machine: { cpus: number; model: string; kernel: string; node: string };
  runs: Run[];
  skipped: { engine: string; reason: string }[];
}

export function machine(): Report['machine'] {
  const c = cpus();
  return { cpus: c.length, model: c[0]?.model.trim() ?? 'unknown', kernel: release(), node: process.version };
}

const fmt = (v: number | undefined, digits: number): string => (v === undefined || Number.isNaN(v) ? '' : v.toFixed(digits));

const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};

/** The runs of each scenario, engine and direction (its rounds), in order of first appearance. */
function byScenario(runs: Run[]): Run[][] {
  const groups = new Map<string, Run[]>();
  for (const r of runs) {
    const key = `${r.scenario}/${r.engine}/${r.direction ?? ''}/${r.streams ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()];
}

/** One row per scenario, engine and direction: the median of each figure over its rounds. */
export function aggregate(runs: Run[]): Run[] {
  return byScenario(runs).map((g) => {
    const out: Run = { ...g[0]! };
    delete out.round;
    for (const f of ['gbps', 'p50_us', 'p99_us', 'conns_per_s', 'rss_mb', 'cpu_s_per_gb', 'front_cpu_s_per_gb'] as const) {
      const xs = g.map((r) => r[f]).filter((v): v is number => v !== undefined);
      if (xs.length) out[f] = median(xs);
    }
    return out;
  });
}

/**
 * How a wss:// or nginx scenario compares with plain ws:// (and tls with ws://
 * through the same nginx): the median of the ratios within each round, and
 * their range when there were several rounds.
 */
function ratioNotes(runs: Run[]): string[] {
  const wsLike = ['tls_direct', 'nginx_ws', 'tls'];
  const inRound = (scenario: Scenario, r: Run): Run | undefined =>
    runs.find((p) => p.scenario === scenario && p.engine === r.engine && p.direction === r.direction && p.round === r.round);
  const notes: string[] = [];
  for (const g of byScenario(runs.filter((x) => wsLike.includes(x.scenario)))) {
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

/** A plain-text table (medians over rounds); throughput rows also show the ratio to direct. */
export function table(all: Run[]): string {
  const runs = aggregate(all);
  const wsLike = (r: Run): boolean => r.scenario.startsWith('tls') || r.scenario === 'nginx_ws' || r.scenario === 'plain_ws';
  const direct = (r: Run): Run | undefined =>
    runs.find((d) => d.engine === 'direct' && d.scenario === (wsLike(r) ? 'throughput' : r.scenario) && d.direction === r.direction);
  const rows = [['scenario', 'engine', 'Gbit/s', 'x direct', 'p50 µs', 'p99 µs', 'conn/s', 'peak RSS MB', 'CPU s/GB', 'nginx s/GB']];
  for (const r of runs) {
    const d = direct(r);
    const ratio = r.gbps !== undefined && d?.gbps && r.engine !== 'direct' ? `${(r.gbps / d.gbps).toFixed(2)}x` : '';
    rows.push([
      r.scenario + (r.direction ? ` ${r.direction}` : '') + (r.streams ? ` ${r.streams}` : ''), r.engine, fmt(r.gbps, 2), ratio, fmt(r.p50_us, 0), fmt(r.p99_us, 0),
      fmt(r.conns_per_s, 0), fmt(r.rss_mb, 0), fmt(r.cpu_s_per_gb, 2), fmt(r.front_cpu_s_per_gb, 2),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const text = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
  const notes = ratioNotes(all);
  return notes.length ? `${text}\n\n${notes.join('\n')}` : text;
}
