/** Benchmark result types, the JSON document and the printed table. */
import { cpus, release } from 'node:os';

export type Scenario = 'throughput' | 'parallel' | 'latency' | 'latency_busy_poll' | 'latency_under_load' | 'latency_under_1g' | 'connect_rate' | 'idle_streams' | 'tls' | 'tls_direct' | 'nginx_ws';
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
  const wsLike = (r: Run): boolean => r.scenario.startsWith('tls') || r.scenario === 'nginx_ws';
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
  const same = (scenario: Scenario, r: Run): Run | undefined =>
    runs.find((p) => p.scenario === scenario && p.engine === r.engine && p.direction === r.direction);
  const tlsNotes = runs.filter(wsLike).map((r) => {
    const plain = same('throughput', r);
    if (!plain?.gbps || r.gbps === undefined) return '';
    const viaNginx = r.scenario === 'tls' ? same('nginx_ws', r) : undefined;
    return `${r.scenario} ${r.direction} · ${r.engine}: ${(r.gbps / plain.gbps).toFixed(2)}x plain ws://` +
      (viaNginx?.gbps ? `, ${(r.gbps / viaNginx.gbps).toFixed(2)}x ws:// through the same nginx` : '');
  }).filter(Boolean);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const text = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
  return tlsNotes.length ? `${text}\n\n${tlsNotes.join('\n')}` : text;
}
