/**
 * A whole benchmark's runs as `npm run bench` records them: every scenario
 * for direct, native and js in three rounds, with figures of the size the
 * README quotes (idle round trips of tens of µs beside 60 ms under load,
 * 2000 idle streams, nginx CPU), each round a little apart from the others.
 */
import type { Run } from '../../bench/report';

type Figures = Omit<Run, 'scenario' | 'engine' | 'direction' | 'round' | 'failed'>;

const BASE: Record<string, Partial<Record<Run['engine'], Figures>>> = {
  'throughput forward': { direct: { gbps: 12.66 }, native: { gbps: 7.37, rss_mb: 115, cpu_s_per_gb: 1.45 }, js: { gbps: 2.92, rss_mb: 195, cpu_s_per_gb: 4.1 } },
  'throughput reverse': { direct: { gbps: 13.44 }, native: { gbps: 7.38, rss_mb: 114, cpu_s_per_gb: 1.4 }, js: { gbps: 3.37, rss_mb: 190, cpu_s_per_gb: 3.9 } },
  parallel: { direct: { gbps: 18.66 }, native: { gbps: 8, rss_mb: 120, cpu_s_per_gb: 1.5 }, js: { gbps: 3.4, rss_mb: 200, cpu_s_per_gb: 4.4 } },
  latency: { direct: { p50_us: 25, p99_us: 90 }, native: { p50_us: 61, p99_us: 452, rss_mb: 111 }, js: { p50_us: 163, p99_us: 4824, rss_mb: 127 } },
  latency_busy_poll: { native: { p50_us: 2055, p99_us: 20592, rss_mb: 111 } },
  latency_under_load: {
    direct: { p50_us: 183, p99_us: 13545, gbps: 7.08 }, native: { p50_us: 9297, p99_us: 61448, gbps: 2.86, rss_mb: 121, cpu_s_per_gb: 1.03 },
    js: { p50_us: 18000, p99_us: 34164, gbps: 2.37, rss_mb: 222, cpu_s_per_gb: 2.91 },
  },
  latency_under_1g: {
    direct: { p50_us: 22, p99_us: 154, gbps: 1 }, native: { p50_us: 72, p99_us: 402, gbps: 1, rss_mb: 112, cpu_s_per_gb: 2 },
    js: { p50_us: 145, p99_us: 3416, gbps: 1, rss_mb: 189, cpu_s_per_gb: 4.78 },
  },
  connect_rate: { direct: { conns_per_s: 4897 }, native: { conns_per_s: 1419, rss_mb: 117 }, js: { conns_per_s: 1094, rss_mb: 126 } },
  idle_streams: { native: { streams: 2000, rss_mb: 159 }, js: { streams: 2000, rss_mb: 235 } },
  plain_ws: { native: { gbps: 6.86, rss_mb: 114, cpu_s_per_gb: 0.64 }, js: { gbps: 4.08, rss_mb: 188, cpu_s_per_gb: 3.98 } },
  tls_direct: { native: { gbps: 4.63, rss_mb: 120, cpu_s_per_gb: 1.29 }, js: { gbps: 2.48, rss_mb: 196, cpu_s_per_gb: 5.42 } },
  nginx_ws: { native: { gbps: 4, rss_mb: 113, cpu_s_per_gb: 0.72, front_cpu_s_per_gb: 0.99 }, js: { gbps: 2.97, rss_mb: 187, cpu_s_per_gb: 3.59, front_cpu_s_per_gb: 1.02 } },
  tls: { native: { gbps: 2.61, rss_mb: 118, cpu_s_per_gb: 1.46, front_cpu_s_per_gb: 1.6 }, js: { gbps: 2.27, rss_mb: 193, cpu_s_per_gb: 5.72, front_cpu_s_per_gb: 1.8 } },
};

/** The peers' figures (`--peer`), in the scenarios the bench measures them in; tws-rust's bulk runs fail. */
const PEERS: Record<string, Partial<Record<Run['engine'], Figures>>> = {
  'throughput forward': { wstunnel: { gbps: 10.6, rss_mb: 30, cpu_s_per_gb: 0.74 } },
  'throughput reverse': { wstunnel: { gbps: 11, rss_mb: 31, cpu_s_per_gb: 0.68 } },
  parallel: { wstunnel: { gbps: 11.5, rss_mb: 35, cpu_s_per_gb: 0.8 }, 'tws-rust': { gbps: 0.8, rss_mb: 60, cpu_s_per_gb: 9.5 } },
  latency: { wstunnel: { p50_us: 66, p99_us: 160, rss_mb: 20 }, 'tws-rust': { p50_us: 120, p99_us: 400, rss_mb: 12 } },
  connect_rate: { wstunnel: { conns_per_s: 1900, rss_mb: 25 }, 'tws-rust': { conns_per_s: 2500, rss_mb: 14 } },
  idle_streams: { wstunnel: { streams: 2000, rss_mb: 140 }, 'tws-rust': { streams: 2000, rss_mb: 90 } },
};

/** Each round's figures of the load generator and the echo target in the connect_rate rows, in cores. */
const LOAD: Figures = { loadgen_cpu: 0.3, target_cpu: 0.5 };

const FRONTS: Run['scenario'][] = ['plain_ws', 'tls_direct', 'nginx_ws', 'tls'];

/** Each round's figures are the base times this (rounds 1, 2, 3): medians are the base figures. */
export const ROUND_FACTORS = [0.9, 1, 1.25];

/**
 * The runs of a 3-round benchmark of direct, native and js, each round
 * measuring every scenario of every engine; with `peers`, wstunnel and
 * tws-rust too, tws-rust's single-stream runs failed, and the connect_rate
 * rows with what the load generator and echo target used.
 */
export function benchRuns(opts: { peers?: boolean } = {}): Run[] {
  const runs: Run[] = [];
  const keys = [...new Set([...Object.keys(BASE), ...(opts.peers ? Object.keys(PEERS) : [])])];
  ROUND_FACTORS.forEach((k, i) => {
    for (const key of keys) {
      const engines = { ...BASE[key], ...(opts.peers ? PEERS[key] : {}) };
      const [scenario, direction] = key.split(' ') as [Run['scenario'], Run['direction']];
      // The wss:// and nginx scenarios run both ways; server → client a little slower here.
      const ways: [Run['direction'], number][] = FRONTS.includes(scenario) ? [['forward', 1], ['reverse', 0.9]] : [[direction, 1]];
      for (const [engine, base] of Object.entries(engines) as [Run['engine'], Figures][]) {
        for (const [d, slower] of ways) {
          const figures: Figures = {};
          for (const [f, v] of Object.entries(base) as [keyof Figures, number][]) figures[f] = f === 'streams' ? v : v * k * slower;
          if (opts.peers && scenario === 'connect_rate') Object.assign(figures, LOAD);
          runs.push({ scenario, engine, round: i + 1, ...(d ? { direction: d } : {}), ...figures });
        }
      }
      if (opts.peers && scenario === 'throughput') runs.push({ scenario, engine: 'tws-rust', round: i + 1, direction, failed: 'iperf3: error - control socket has closed unexpectedly' });
    }
  });
  return runs;
}
