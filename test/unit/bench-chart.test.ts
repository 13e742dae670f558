import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderSvg } from '../../bench/chart';
import { aggregate, Run } from '../../bench/report';
import { benchRuns } from '../helpers/bench-runs';
import { needs } from '../helpers/tools';

const runs = benchRuns();
const svg = renderSvg(aggregate(runs), 'tws-native 0.1.0 · 2 × AMD EPYC · Linux 6.18 · Node v20.20.2 · 2026-11-30 · 10 s runs · 3 rounds');

const attrs = (s: string): Record<string, string> => Object.fromEntries([...s.matchAll(/([\w-]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
const unescape = (s: string): string => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');

/** Each bar's tooltip and height. */
const bars = [...svg.matchAll(/<rect([^>]*)><title>([^<]*)<\/title><\/rect>/g)].map((m) => ({ title: unescape(m[2]!), height: Number(attrs(m[1]!).height) }));

/** The box each visible label covers, from DejaVu Sans' advance widths (rsvg-convert's sans-serif), a little rounded up. */
function labels(doc: string): { text: string; x0: number; x1: number; y0: number; y1: number }[] {
  return [...doc.matchAll(/<text([^>]*)>([^<]*)<\/text>/g)].map((m) => {
    const a = attrs(m[1]!);
    const text = unescape(m[2]!);
    const size = Number(a['font-size'] ?? 16);
    const em = [...text].reduce((w, c) => w + (/[\s.,:;'|!()/\-·il]/.test(c) ? 0.36 : /[mwMW→←–]/.test(c) ? 0.9 : /[A-Z]/.test(c) ? 0.7 : 0.63), 0);
    const width = em * size * (a['font-weight'] === 'bold' ? 1.1 : 1);
    const x = Number(a.x);
    const x0 = a['text-anchor'] === 'middle' ? x - width / 2 : a['text-anchor'] === 'end' ? x - width : x;
    return { text, x0, x1: x0 + width, y0: Number(a.y) - 0.76 * size, y1: Number(a.y) + 0.24 * size };
  });
}

const rowName = (r: Run): string => `${r.scenario}${r.direction ? ` ${r.direction}` : ''}${r.streams ? ` ${r.streams}` : ''} · ${r.engine}`;

t.test('every row of the table has a bar in the chart, and memory and CPU have panels of their own', async (t) => {
  const names = [...new Set(runs.map(rowName))];
  t.equal(names.length, 40, 'the fixture has every row');
  for (const name of names) t.ok(bars.some((b) => b.title.startsWith(`${name} — `)), `a bar for ${name}`);
  for (const [name, panel] of [['idle_streams 2000 · native', 'Peak RSS'], ['throughput forward · js', 'CPU per GB'], ['tls reverse · native', "nginx's own CPU"],
    ['tls_direct forward · js', 'wss:// and nginx, client → server'], ['nginx_ws reverse · native', 'wss:// and nginx, server → client']]) {
    t.ok(bars.some((b) => b.title.startsWith(`${name} — ${panel}`)), `${name} in ${panel}`);
  }
});

/** Labels of `doc` that overlap another or lie outside it. */
function clashes(doc: string): string[] {
  const { width, height } = attrs(/<svg([^>]*)>/.exec(doc)![1]!);
  const boxes = labels(doc);
  const found: string[] = [];
  boxes.forEach((a, i) => {
    if (a.x0 < 0 || a.x1 > Number(width) || a.y0 < 0 || a.y1 > Number(height)) found.push(`${a.text} lies outside`);
    for (const b of boxes.slice(i + 1)) {
      if (a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1) found.push(`${a.text} / ${b.text}`);
    }
  });
  return found;
}

t.test('no two labels of the chart overlap, and every label lies inside it', async (t) => {
  t.ok(labels(svg).length > 100, `${labels(svg).length} labels`);
  t.same(clashes(svg), []);
});

t.test('latency is drawn on a log axis: a 25 µs idle round trip stays visible beside 18 ms under load', async (t) => {
  const bar = (name: string): number => bars.find((b) => b.title.startsWith(name))!.height;
  const idle = bar('latency · direct — Round trip, 64 B, p50');
  const loaded = bar('latency_under_load · js — Round trip, 64 B, p50');
  // On one linear axis 25 µs would be 0.2 px beside 146 px.
  t.ok(idle >= 10 && idle > 0.1 * loaded, `25 µs is ${idle.toFixed(1)} px tall beside 18 ms at ${loaded.toFixed(1)} px`);
  t.match(svg, />100 µs</);
  t.match(svg, />10 ms</);
});

t.test('bars stand at the median of the rounds and whiskers span them', async (t) => {
  // Rounds at 0.9, 1 and 1.25 times 7.37 Gbit/s.
  t.ok(bars.some((b) => b.title === 'throughput forward · native — Throughput: 7.37 Gbit/s (6.63–9.21), median of 3 rounds'));
  t.equal((svg.match(/<path d="M[^"]*" stroke="#222"/g) ?? []).length, bars.length, 'one whisker per bar');
  t.match(svg, /bar: median of 3 rounds, whisker: least to greatest/);
});

t.test('rsvg-convert renders the chart', { skip: needs('rsvg-convert') }, async (t) => {
  const dir = t.testdir({});
  writeFileSync(join(dir, 'chart.svg'), svg);
  const r = spawnSync('rsvg-convert', [join(dir, 'chart.svg'), '-o', join(dir, 'chart.png')], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 0, r.stderr);
});

t.test('peers get bars of their own colour, a legend entry with their version, and failed rows are named under the chart', async (t) => {
  const peerRuns = benchRuns({ peers: true });
  const doc = renderSvg(aggregate(peerRuns), 'tws-native 0.1.0 · 2 × AMD EPYC · 3 rounds', { wstunnel: 'wstunnel (wstunnel-cli 10.6.2)', 'tws-rust': 'tws-rust (tws-rust 0.2.0)' });
  const titles = [...doc.matchAll(/<rect([^>]*)><title>([^<]*)<\/title><\/rect>/g)].map((m) => ({ title: unescape(m[2]!), fill: attrs(m[1]!).fill }));
  const withFigures = [...new Set(peerRuns.filter((r) => !r.failed).map(rowName))].filter((n) => / · (wstunnel|tws-rust)$/.test(n));
  t.equal(withFigures.length, 10, 'wstunnel in six rows, tws-rust in four');
  for (const name of withFigures) t.ok(titles.some((b) => b.title.startsWith(`${name} — `)), `a bar for ${name}`);
  t.ok(titles.filter((b) => b.title.includes(' · wstunnel — ')).every((b) => b.fill === titles.find((x) => x.title.includes(' · wstunnel — '))!.fill), 'wstunnel has one colour');
  t.not(titles.find((b) => b.title.includes(' · wstunnel — '))!.fill, titles.find((b) => b.title.includes(' · tws-rust — '))!.fill, 'peers differ in colour');
  t.notOk(titles.some((b) => b.title.startsWith('throughput forward · tws-rust')), 'no bar for a row whose rounds all failed');
  t.match(doc, />wstunnel \(wstunnel-cli 10\.6\.2\)</);
  t.match(doc, />failed rounds, left out of the bars: throughput forward · tws-rust \(3\/3\), throughput reverse · tws-rust \(3\/3\)</);
  t.same(clashes(doc), [], 'no label overlaps another or leaves the chart');
});
