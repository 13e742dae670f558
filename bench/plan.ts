/**
 * The order the benchmark measures in. Figures on this machine move by a
 * third from one minute to the next, so nothing is measured once and
 * compared with a run made minutes earlier: every scenario runs in each
 * round, the engines one right after the other and in a different order each
 * round (direct, native, js; then native, js, direct; …), so no engine always
 * goes first or always follows the same neighbour.
 */
import type { PeerName } from './peers';
import { EngineName, FRONT_SCENARIOS, Scenario } from './report';

export interface Step {
  round: number;
  scenario: Scenario;
  engine: EngineName;
  direction?: 'forward' | 'reverse';
}

/** `list` rotated left by `by` places. */
export function rotate<T>(list: readonly T[], by: number): T[] {
  const k = list.length ? by % list.length : 0;
  return [...list.slice(k), ...list.slice(0, k)];
}

/**
 * Every measurement of a benchmark of `engines` (tunnel engines; direct is
 * always measured) over `rounds` rounds, in order. `nginx`: whether the
 * nginx scenarios run. Within a round, the wss:// and nginx scenarios of an
 * engine and direction follow their own plain ws:// run, whose ratio to them
 * the report gives. `peers` (other tunnels, `--peer`) join the rotation
 * in what they can be compared in: both single-stream throughputs, -P 8,
 * the idle round trip, the connection rate and idle streams.
 */
export function schedule(engines: EngineName[], rounds: number, nginx: boolean, peers: PeerName[] = []): Step[] {
  const tunnels = engines.filter((e) => e !== 'direct');
  const isPeer = (e: EngineName): boolean => (peers as EngineName[]).includes(e);
  const tws = (e: EngineName): boolean => !isPeer(e);
  const steps: Step[] = [];
  for (let round = 1; round <= rounds; round++) {
    const order = rotate(['direct', ...tunnels, ...peers] as EngineName[], round - 1);
    const each = (scenario: Scenario, direction?: Step['direction'], only: (e: EngineName) => boolean = () => true): void => {
      for (const engine of order) if (only(engine)) steps.push({ round, scenario, engine, ...(direction ? { direction } : {}) });
    };
    each('throughput', 'forward');
    each('throughput', 'reverse');
    each('parallel');
    each('latency');
    each('latency_busy_poll', undefined, (e) => e === 'native');
    each('latency_under_load', undefined, tws);
    each('latency_under_1g', undefined, tws);
    each('connect_rate');
    each('connect_rate_socks', undefined, (e) => e !== 'direct' && tws(e));
    each('idle_streams', undefined, (e) => e !== 'direct');
    const fronts = FRONT_SCENARIOS.filter((s) => nginx || s === 'tls_direct');
    for (const direction of ['forward', 'reverse'] as const) {
      for (const engine of rotate(tunnels, round - 1)) {
        for (const scenario of ['plain_ws', ...fronts] as Scenario[]) steps.push({ round, scenario, engine, direction });
      }
    }
  }
  return steps;
}
