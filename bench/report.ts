/** Benchmark result types, the JSON document and the printed table. */
import { cpus, release } from 'node:os';

export type Scenario = 'throughput' | 'parallel' | 'latency' | 'latency_busy_poll' | 'latency_under_load' | 'connect_rate' | 'idle_streams' | 'tls' | 'tls_direct';
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

/** A plain-text table; throughput rows also show the ratio to direct. */
export function table(runs: Run[]): string {
  const direct = (r: Run): Run | undefined =>
    runs.find((d) => d.engine === 'direct' && d.scenario === (r.scenario.startsWith('tls') ? 'throughput' : r.scenario) && d.direction === r.direction);
  const rows = [['scenario', 'engine', 'Gbit/s', 'x direct', 'p50 µs', 'p99 µs', 'conn/s', 'peak RSS MB', 'CPU s/GB']];
  for (const r of runs) {
    const d = direct(r);
    const ratio = r.gbps !== undefined && d?.gbps && r.engine !== 'direct' ? `${(r.gbps / d.gbps).toFixed(2)}x` : '';
    rows.push([
      r.scenario + (r.direction ? ` ${r.direction}` : '') + (r.streams ? ` ${r.streams}` : ''), r.engine, fmt(r.gbps, 2), ratio, fmt(r.p50_us, 0), fmt(r.p99_us, 0),
      fmt(r.conns_per_s, 0), fmt(r.rss_mb, 0), fmt(r.cpu_s_per_gb, 2),
    ]);
  }
  const tlsNotes = runs.filter((r) => r.scenario.startsWith('tls')).map((r) => {
    const plain = runs.find((p) => p.scenario === 'throughput' && p.engine === r.engine && p.direction === r.direction);
    return plain?.gbps && r.gbps !== undefined ? `${r.scenario} ${r.direction} · ${r.engine}: ${(r.gbps / plain.gbps).toFixed(2)}x plain ws://` : '';
  }).filter(Boolean);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const text = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
  return tlsNotes.length ? `${text}\n\n${tlsNotes.join('\n')}` : text;
}
