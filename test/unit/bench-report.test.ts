import t from 'tap';
import { rotate, schedule } from '../../bench/plan';
import { aggregate, Run, table } from '../../bench/report';
import { benchRuns } from '../helpers/bench-runs';

// Figures as `npm run bench --rounds 3` records them: each round has its own plain ws:// run.
const rounds: Run[] = [
  [8, 4, 4.8], [6, 3.6, 4.5], [7, 4.9, 5.0],
].flatMap(([plain, tls, ws], i) => [
  { scenario: 'plain_ws', engine: 'native', direction: 'forward', gbps: plain, round: i + 1 },
  { scenario: 'nginx_ws', engine: 'native', direction: 'forward', gbps: ws, round: i + 1, front_cpu_s_per_gb: 0.8 + i / 10 },
  { scenario: 'tls', engine: 'native', direction: 'forward', gbps: tls, round: i + 1 },
] as Run[]);

t.test('ratios are taken within each round, and the note gives their median and range', async (t) => {
  const out = table(rounds);
  // tls / plain per round: 0.50, 0.60, 0.70; tls / ws via nginx: 0.833, 0.8, 0.98.
  t.match(out, /^tls forward · native: 0\.60x plain ws:\/\/, 0\.83x ws:\/\/ through the same nginx \(median of 3 rounds; against plain ws:\/\/ 0\.50–0\.70x\)$/m);
  // nginx_ws / plain per round: 0.60, 0.75, 0.714.
  t.match(out, /^nginx_ws forward · native: 0\.71x plain ws:\/\/ \(median of 3 rounds; against plain ws:\/\/ 0\.60–0\.75x\)$/m);
});

t.test('the table has one row per scenario with the median of its rounds and their range', async (t) => {
  const rows = aggregate(rounds);
  t.equal(rows.length, 3);
  t.match(rows.find((r) => r.scenario === 'tls'), { rounds: 3, figures: { gbps: { median: 4, min: 3.6, max: 4.9, n: 3 } } });
  t.match(rows.find((r) => r.scenario === 'plain_ws'), { figures: { gbps: { median: 7 } } });
  t.match(rows.find((r) => r.scenario === 'nginx_ws')!.figures.front_cpu_s_per_gb, { median: 0.9, min: 0.8, max: 1 });
  t.match(table(rounds), /^tls forward\s+native\s+4\.00 \(3\.60–4\.90\)\s*$/m);
  t.match(table(rounds), /^median \(least–greatest\) of 3 rounds/);
});

t.test('every row of a whole run shows each figure as median (least–greatest)', async (t) => {
  const out = table(benchRuns());
  // Rounds at 0.9, 1 and 1.25 times the base figures; within a round native keeps 7.37 / 12.66 of direct.
  t.match(out, /^throughput forward\s+direct\s+12\.66 \(11\.39–15\.82\)\s*$/m);
  t.match(out, /^throughput forward\s+native\s+7\.37 \(6\.63–9\.21\)\s+0\.58x \(0\.58–0\.58\)\s+115 \(104–144\)\s+1\.45 \(1\.30–1\.81\)\s*$/m);
  t.match(out, /^latency\s+direct\s+25 \(23–31\)\s+90 \(81–113\)\s*$/m);
  t.match(out, /^connect_rate\s+js\s+1094 \(985–1368\)\s+126 \(113–158\)\s*$/m);
  t.match(out, /^idle_streams 2000\s+native\s+159 \(143–199\)\s*$/m);
  t.match(out, /^tls reverse\s+js\s+2\.04 \(1\.84–2\.55\)\s+0\.15x \(0\.15–0\.15\)\s+174 \(156–217\)\s+5\.15 \(4\.63–6\.43\)\s+1\.62 \(1\.46–2\.02\)\s*$/m);
});

t.test('x direct is the median of the ratios within each round, not a ratio of medians', async (t) => {
  const runs: Run[] = [[10, 6], [20, 8], [12, 9]].flatMap(([direct, native], i) => [
    { scenario: 'throughput', engine: 'direct', direction: 'forward', gbps: direct, round: i + 1 },
    { scenario: 'throughput', engine: 'native', direction: 'forward', gbps: native, round: i + 1 },
  ] as Run[]);
  // Within rounds 0.60, 0.40, 0.75; the medians' ratio would say 8 / 12 = 0.67.
  t.match(table(runs), /^throughput forward\s+native\s+8\.00 \(6\.00–9\.00\)\s+0\.60x \(0\.40–0\.75\)\s*$/m);
});

t.test('each round measures every scenario, the engines back to back in a rotating order', async (t) => {
  const plan = schedule(['native', 'js'], 3, true);
  const key = (s: { scenario: string; direction?: string }): string => `${s.scenario}${s.direction ? ` ${s.direction}` : ''}`;
  for (let round = 1; round <= 3; round++) {
    const steps = plan.filter((s) => s.round === round);
    const engines = (scenario: string): string[] => steps.filter((s) => key(s) === scenario).map((s) => s.engine);
    const order = rotate(['direct', 'native', 'js'], round - 1);
    for (const scenario of ['throughput forward', 'throughput reverse', 'parallel', 'latency', 'latency_under_load', 'latency_under_1g', 'connect_rate']) {
      t.same(engines(scenario), order, `round ${round}: ${scenario} in order ${order.join(', ')}`);
      const at = steps.map((s, i) => (key(s) === scenario ? i : -1)).filter((i) => i >= 0);
      t.equal(at[at.length - 1]! - at[0]!, at.length - 1, `round ${round}: ${scenario}'s engines run back to back`);
    }
    t.same(engines('latency_busy_poll'), ['native']);
    t.same(engines('idle_streams'), order.filter((e) => e !== 'direct'));
    t.same(engines('connect_rate_socks'), order.filter((e) => e !== 'direct'), 'SOCKS5: through a tunnel only');
    for (const direction of ['forward', 'reverse']) {
      const fronts = steps.filter((s) => s.direction === direction && s.scenario !== 'throughput');
      t.same(fronts.map((s) => `${s.engine} ${s.scenario}`), rotate(['native', 'js'], round - 1).flatMap((e) =>
        ['plain_ws', 'tls_direct', 'nginx_ws', 'tls'].map((sc) => `${e} ${sc}`)), `round ${round} ${direction}: each engine's plain ws:// run just before its wss:// and nginx runs`);
    }
  }
  t.equal(plan.length, 3 * (7 + 9 + 8 + 16 + 2));
  t.notOk(schedule(['js'], 1, false).some((s) => s.scenario === 'nginx_ws' || s.scenario === 'tls' || s.engine === 'native'), 'no nginx, no native: none of their steps');
});

t.test('one round: the ratio alone, no range', async (t) => {
  const out = table(rounds.filter((r) => r.round === 2));
  t.match(out, /^tls forward · native: 0\.60x plain ws:\/\/, 0\.80x ws:\/\/ through the same nginx$/m);
});

t.test('peers join the rotation in throughput, -P 8, the idle round trip, connection rate and idle streams, and nothing else', async (t) => {
  const plan = schedule(['native', 'js'], 3, true, ['wstunnel', 'tws-rust']);
  const key = (s: { scenario: string; direction?: string }): string => `${s.scenario}${s.direction ? ` ${s.direction}` : ''}`;
  for (let round = 1; round <= 3; round++) {
    const steps = plan.filter((s) => s.round === round);
    const engines = (scenario: string): string[] => steps.filter((s) => key(s) === scenario).map((s) => s.engine);
    const order = rotate(['direct', 'native', 'js', 'wstunnel', 'tws-rust'], round - 1);
    for (const scenario of ['throughput forward', 'throughput reverse', 'parallel', 'latency', 'connect_rate']) {
      t.same(engines(scenario), order, `round ${round}: ${scenario} in order ${order.join(', ')}`);
    }
    t.same(engines('idle_streams'), order.filter((e) => e !== 'direct'), `round ${round}: idle streams through every tunnel`);
    for (const scenario of ['latency_under_load', 'latency_under_1g', 'connect_rate_socks']) {
      t.same(engines(scenario), order.filter((e) => e === 'native' || e === 'js' || (e === 'direct' && !scenario.endsWith('socks'))), `round ${round}: ${scenario} without peers`);
    }
  }
  t.notOk(plan.some((s) => (s.engine === 'wstunnel' || s.engine === 'tws-rust') && ['plain_ws', 'tls_direct', 'nginx_ws', 'tls', 'latency_busy_poll'].includes(s.scenario)),
    'no wss://, nginx or --busy-poll rows for peers');
  t.equal(plan.length, 3 * (7 + 9 + 8 + 16 + 2) + 3 * 2 * 6, 'six more steps a round per peer');
});

t.test('peer rows: x direct within rounds, failed rounds named in the table, and what the load generator used', async (t) => {
  const out = table(benchRuns({ peers: true }));
  // 10.6 of direct's 12.66 in every round.
  t.match(out, /^throughput forward\s+wstunnel\s+10\.60 \(9\.54–13\.25\)\s+0\.84x \(0\.84–0\.84\)\s+30 \(27–38\)\s+0\.74 \(0\.67–0\.93\)\s*$/m);
  t.match(out, /^throughput forward\s+tws-rust \(failed 3\/3\)\s*$/m, 'a row whose every round failed keeps its place, marked');
  t.match(out, /^throughput reverse · tws-rust failed in round 2: iperf3: error - control socket has closed unexpectedly$/m);
  t.match(out, /^connect_rate\s+wstunnel\s+1900 \(1710–2375\)/m);
  t.match(out, /^connect_rate · direct: load generator 0\.30 \(0\.30–0\.30\) cores, echo target 0\.50 \(0\.50–0\.50\) cores$/m);
  const rows = aggregate(benchRuns({ peers: true }));
  t.same(rows.find((r) => r.engine === 'tws-rust' && r.scenario === 'throughput')!.figures, {}, 'no figures from failed rounds');
  t.match(rows.find((r) => r.engine === 'tws-rust' && r.scenario === 'parallel'), { figures: { gbps: { median: 0.8 } } });
  t.notOk(rows.find((r) => r.engine === 'tws-rust' && r.scenario === 'parallel')!.failed, 'only the failed rows carry failures');
});

t.test('each tws engine is compared with each peer figure by figure, as the median of the ratios within rounds', async (t) => {
  const out = table(benchRuns({ peers: true }));
  // native 7.37 / wstunnel 10.6 Gbit/s, 1.45 / 0.74 s/GB, 61 / 66 µs, 1419 / 1900 conn/s, 159 / 140 MB, … in every round.
  t.match(out, /^native \/ wstunnel, median of the ratios within rounds: Gbit\/s → 0\.70x, Gbit\/s ← 0\.67x, Gbit\/s -P 8 0\.70x, CPU s\/GB → 1\.96x, CPU s\/GB ← 2\.06x, CPU s\/GB -P 8 1\.88x, p50 0\.92x, p99 2\.83x, conn\/s 0\.75x, idle-streams RSS 1\.14x$/m);
  // tws-rust's single-stream rounds all failed: those figures are left out, not taken as zero.
  t.match(out, /^native \/ tws-rust, median of the ratios within rounds: Gbit\/s -P 8 10\.00x, CPU s\/GB -P 8 0\.16x, p50 0\.51x, p99 1\.13x, conn\/s 0\.57x, idle-streams RSS 1\.77x$/m);
  t.match(out, /^js \/ wstunnel, /m);
  t.notMatch(table(benchRuns()), / \/ wstunnel/, 'no peers, no comparison');
  // Within rounds 0.60, 0.40, 0.75; the medians' ratio would say 8 / 12 = 0.67.
  const runs: Run[] = [[6, 10], [8, 20], [9, 12]].flatMap(([native, peer], i) => [
    { scenario: 'connect_rate', engine: 'native', conns_per_s: native, round: i + 1 },
    { scenario: 'connect_rate', engine: 'wstunnel', conns_per_s: peer, round: i + 1 },
  ] as Run[]);
  t.match(table(runs), /^native \/ wstunnel, median of the ratios within rounds: conn\/s 0\.60x$/m);
});
