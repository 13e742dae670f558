import t from 'tap';
import { aggregate, Run, table } from '../../bench/report';

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

t.test('the table has one row per scenario with the median of its rounds', async (t) => {
  const rows = aggregate(rounds);
  t.equal(rows.length, 3);
  t.match(rows.find((r) => r.scenario === 'tls'), { gbps: 4, round: undefined });
  t.match(rows.find((r) => r.scenario === 'plain_ws'), { gbps: 7 });
  t.equal(rows.find((r) => r.scenario === 'nginx_ws')!.front_cpu_s_per_gb, 0.9);
  t.match(table(rounds), /^tls forward\s+native\s+4\.00\s*$/m);
});

t.test('one round: the ratio alone, no range', async (t) => {
  const out = table(rounds.filter((r) => r.round === 2));
  t.match(out, /^tls forward · native: 0\.60x plain ws:\/\/, 0\.80x ws:\/\/ through the same nginx$/m);
});
