/**
 * Renders the benchmark as one SVG: a panel per kind of figure (throughput,
 * wss:// and nginx, latency p50 and p99 on log axes, connection rate,
 * memory, CPU), a bar per row of the table at its median, and a whisker
 * over the range of its rounds. Panels are as wide as their labels need and
 * flow into rows, so no two labels overlap (test/unit/bench-report.test.ts
 * checks the rendered boxes).
 */
import { Figure, Row, rowName, Spread } from './report';

const COLORS: Record<string, string> = { direct: '#7f8c8d', native: '#2980b9', js: '#e67e22', wstunnel: '#27ae60', 'wstunnel-unmasked': '#8bc34a', 'tws-rust': '#8e44ad' };
const ENGINE_ORDER = ['direct', 'native', 'js', 'wstunnel', 'wstunnel-unmasked', 'tws-rust'];
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * How wide `text` renders at `size` px, estimated on the wide side (DejaVu
 * Sans, the usual sans-serif: digits are 0.64 em, most letters less), so
 * that layout that keeps these apart keeps the real glyphs apart.
 */
export function textWidth(text: string, size: number, bold = false): number {
  return [...text].length * size * (bold ? 0.72 : 0.66);
}

interface Bar { engine: string; value: Spread; name: string }
interface Group { label: string[]; bars: Bar[] }
interface PanelSpec { title: string; unit: string; digits: number; log: boolean; groups: Group[] }

const ARROW: Record<string, string> = { forward: '→', reverse: '←' };

/** Which rows go to which panel, under which group label, and with which figure. */
function panels(rows: Row[]): PanelSpec[] {
  type Pick = [string, (r: Row) => boolean];
  const is = (scenario: Row['scenario'], direction?: Row['direction']) => (r: Row): boolean => r.scenario === scenario && r.direction === direction;
  const spec = (title: string, unit: string, figure: Figure, digits: number, groups: Pick[], log = false): PanelSpec => ({
    title, unit, digits, log,
    groups: groups.map(([label, match]) => ({
      label: label.split('\n'),
      bars: rows.filter((r) => match(r) && r.figures[figure] && !(log && !(r.figures[figure]!.min > 0)))
        .sort((a, b) => order(a.engine) - order(b.engine))
        .map((r) => ({ engine: r.engine, value: r.figures[figure]!, name: `${rowName(r)} · ${r.engine}` })),
    })).filter((g) => g.bars.length > 0),
  });
  const oneStream: Pick[] = (['forward', 'reverse'] as const).map((d) => [`1 stream\n${ARROW[d]}`, is('throughput', d)]);
  const parallel: Pick = ['8 streams\n(-P 8, -c 2)', is('parallel')];
  const fronts = (direction: 'forward' | 'reverse'): PanelSpec => spec(`wss:// and nginx, ${direction === 'forward' ? 'client → server' : 'server → client'}`,
    'Gbit/s, 1 stream (higher is better)', 'gbps', 2, [
      ['plain\nws://', is('plain_ws', direction)], ['wss://\n--tls-cert', is('tls_direct', direction)],
      ['ws://\nvia nginx', is('nginx_ws', direction)], ['wss://\nvia nginx', is('tls', direction)],
    ]);
  const latency = (p: 'p50_us' | 'p99_us'): PanelSpec => spec(`Round trip, 64 B, ${p.slice(0, 3)}`, 'µs, log scale (lower is better)', p, 0, [
    ['idle', is('latency')], ['--busy-poll\n1000', is('latency_busy_poll')],
    ['beside\n1 Gbit/s bulk', is('latency_under_1g')], ['beside\nflat-out bulk', is('latency_under_load')],
  ], true);
  const idle = rows.find((r) => r.scenario === 'idle_streams')?.streams;
  return [
    spec('Throughput', 'Gbit/s (higher is better)', 'gbps', 2, [...oneStream, parallel]),
    fronts('forward'),
    fronts('reverse'),
    latency('p50_us'),
    latency('p99_us'),
    spec('Connections/s', 'conn/s (higher is better)', 'conns_per_s', 0, [
      ['connect, echo,\nclose (8 workers)', is('connect_rate')], ['the same through\nthe SOCKS5 listener', is('connect_rate_socks')]]),
    spec('Peak RSS, server + client', 'MB (lower is better)', 'rss_mb', 0, [[`${idle ?? ''} idle\nstreams`, (r) => r.scenario === 'idle_streams'], oneStream[0]!]),
    spec('CPU per GB, server + client', 's/GB (lower is better)', 'cpu_s_per_gb', 2, [
      ...oneStream, parallel, ['wss://\n--tls-cert →', is('tls_direct', 'forward')], ['wss://\n--tls-cert ←', is('tls_direct', 'reverse')]]),
    spec("nginx's own CPU per GB", 's/GB (lower is better)', 'front_cpu_s_per_gb', 2, [
      ['ws://\n→', is('nginx_ws', 'forward')], ['ws://\n←', is('nginx_ws', 'reverse')], ['wss://\n→', is('tls', 'forward')], ['wss://\n←', is('tls', 'reverse')]]),
  ].filter((p) => p.groups.length > 0);
}

function order(engine: string): number {
  const i = ENGINE_ORDER.indexOf(engine);
  return i < 0 ? ENGINE_ORDER.length : i;
}

/** A round upper bound and ticks for a linear axis from 0 to at least `max`. */
function linearTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(6)));
  return ticks.length > 1 ? ticks : [0, step];
}

/** Decades from the one at or below `min` to the one at or above `max`. */
function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(max)));
  return Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
}

const fmtTick = (v: number, log: boolean): string => {
  if (!log) return String(v);
  return v >= 1000 ? `${v / 1000} ms` : `${v} µs`;
};

const TITLE = 13;
const UNIT = 11;
const VALUE = 10;
const GROUP = 11;
const TICK = 10;
const PANEL_H = 280;
const PAD_R = 12;
const GROUP_GAP = 14;

interface Layout {
  width: number;
  /** Room left of the first group: the tick labels and the axis. */
  padL: number;
  /** Distance between neighbouring bars: each is as wide as its value label. */
  pitch: number;
  groupWidths: number[];
  /** Content narrower than the title leaves room: the groups are centred. */
  inset: number;
  ticks: number[];
}

/** A panel's size: bars wide enough for their value labels, groups for their labels, the whole for its title. */
function layout(p: PanelSpec): Layout {
  const values = p.groups.flatMap((g) => g.bars.flatMap((b) => [b.value.min, b.value.max, b.value.median]));
  const ticks = p.log ? logTicks(Math.min(...values), Math.max(...values)) : linearTicks(Math.max(...values));
  const padL = Math.ceil(Math.max(...ticks.map((t) => textWidth(fmtTick(t, p.log), TICK))) + 16);
  const labels = p.groups.flatMap((g) => g.bars.map((b) => b.value.median.toFixed(p.digits)));
  const pitch = Math.max(26, ...labels.map((l) => textWidth(l, VALUE) + 6));
  const groupWidths = p.groups.map((g) => Math.max(g.bars.length * pitch, ...g.label.map((l) => textWidth(l, GROUP) + 6)));
  const content = padL + groupWidths.reduce((a, b) => a + b, 0) + GROUP_GAP * (p.groups.length - 1) + PAD_R;
  const width = Math.ceil(Math.max(content, textWidth(p.title, TITLE, true) + 20, textWidth(p.unit, UNIT) + 20));
  return { width, padL, pitch, groupWidths, inset: (width - content) / 2, ticks };
}

function text(x: number, y: number, size: number, s: string, extra = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-size="${size}"${extra ? ' ' + extra : ''}>${esc(s)}</text>`;
}

function panel(p: PanelSpec, x0: number, y0: number): string {
  const { width, padL, pitch, groupWidths, inset, ticks } = layout(p);
  const top = y0 + 60;
  const bottom = y0 + PANEL_H - 40;
  const lo = ticks[0]!;
  const hi = ticks[ticks.length - 1]!;
  const y = (v: number): number => p.log
    ? bottom - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (bottom - top)
    : bottom - ((v - lo) / (hi - lo)) * (bottom - top);
  const axisX = x0 + inset + padL - 6;
  const axisEnd = x0 + width - inset - PAD_R;
  let out = text(x0 + width / 2, y0 + 18, TITLE, p.title, 'text-anchor="middle" font-weight="bold"');
  out += text(x0 + width / 2, y0 + 34, UNIT, p.unit, 'text-anchor="middle" fill="#555"');
  for (const t of ticks) {
    out += `<line x1="${axisX.toFixed(1)}" y1="${y(t).toFixed(1)}" x2="${axisEnd.toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e3e3e3"/>`;
    out += text(axisX - 4, y(t) + 3.5, TICK, fmtTick(t, p.log), 'text-anchor="end" fill="#555"');
  }
  out += `<line x1="${axisX.toFixed(1)}" y1="${bottom}" x2="${axisEnd.toFixed(1)}" y2="${bottom}" stroke="#333"/>`;
  let gx = x0 + inset + padL;
  p.groups.forEach((g, gi) => {
    const gw = groupWidths[gi]!;
    const bx0 = gx + (gw - g.bars.length * pitch) / 2;
    g.bars.forEach((b, bi) => {
      const x = bx0 + bi * pitch + 3;
      const w = pitch - 6;
      const cx = x + w / 2;
      const v = b.value;
      const yTop = y(v.median);
      const range = v.n > 1 ? ` (${v.min.toFixed(p.digits)}–${v.max.toFixed(p.digits)}), median of ${v.n} rounds` : '';
      out += `<rect x="${x.toFixed(1)}" y="${yTop.toFixed(1)}" width="${w.toFixed(1)}" height="${(bottom - yTop).toFixed(1)}" fill="${COLORS[b.engine] ?? '#999'}">` +
        `<title>${esc(`${b.name} — ${p.title}: ${v.median.toFixed(p.digits)} ${p.unit.split(/[ ,:]/)[0]}${range}`)}</title></rect>`;
      if (v.n > 1) {
        const [y1, y2] = [y(v.min), y(v.max)];
        out += `<path d="M${cx.toFixed(1)} ${y1.toFixed(1)}V${y2.toFixed(1)}M${(cx - 4).toFixed(1)} ${y1.toFixed(1)}h8M${(cx - 4).toFixed(1)} ${y2.toFixed(1)}h8" stroke="#222" stroke-width="1.2" fill="none"/>`;
      }
      const labelY = Math.min(yTop, v.n > 1 ? y(v.max) : yTop) - 4;
      out += text(cx, labelY, VALUE, v.median.toFixed(p.digits), 'text-anchor="middle" stroke="white" stroke-width="3" paint-order="stroke"');
    });
    g.label.forEach((line, li) => { out += text(gx + gw / 2, bottom + 14 + li * 13, GROUP, line, 'text-anchor="middle"'); });
    gx += gw + GROUP_GAP;
  });
  return out;
}

/**
 * The whole chart: `rows` as aggregate() gives them, `subtitle` (machine,
 * date, settings) under the heading; `names`: legend entries other than
 * the engine's name (a peer's version).
 */
export function renderSvg(rows: Row[], subtitle: string, names: Record<string, string> = {}): string {
  const specs = panels(rows);
  const widths = specs.map((p) => layout(p).width);
  const engines = [...new Set(rows.map((r) => r.engine))].sort((a, b) => order(a) - order(b));
  const most = Math.max(0, ...rows.map((r) => r.rounds));
  // Under the panels: the engines and peers, then how to read the bars, then what failed.
  const entries = engines.map((e) => ({ engine: e, name: names[e] ?? e, width: 18 + textWidth(names[e] ?? e, 12) + 24 }));
  const notes = [most > 1
    ? `bar: median of ${most} rounds, whisker: least to greatest · → client to server, ← server to client`
    : 'one round: one measurement per bar (--rounds 3 gives medians and ranges) · → client to server, ← server to client'];
  const failed = rows.filter((r) => r.failed).map((r) => `${rowName(r)} · ${r.engine} (${r.failed!.length}/${r.rounds})`);
  if (failed.length) notes.push(`failed rounds, left out of the bars: ${failed.join(', ')}`);
  const W = Math.ceil(Math.max(1360, textWidth(subtitle, UNIT) + 32, ...widths.map((w) => w + 16),
    16 + entries.reduce((n, e) => n + e.width, 0), ...notes.map((n) => textWidth(n, UNIT) + 32)));
  const GAP = 20;
  let x = 8;
  let y = 56;
  let body = '';
  specs.forEach((p, i) => {
    if (x > 8 && x + widths[i]! > W - 8) {
      x = 8;
      y += PANEL_H + 10;
    }
    body += panel(p, x, y) + '\n';
    x += widths[i]! + GAP;
  });
  const legendY = y + PANEL_H + 10;
  const H = legendY + 20 + 16 * notes.length + 8;
  let legend = '';
  let lx = 16;
  for (const e of entries) {
    legend += `<rect x="${lx}" y="${legendY}" width="12" height="12" fill="${COLORS[e.engine] ?? '#999'}"/>` + text(lx + 18, legendY + 10, 12, e.name);
    lx += e.width;
  }
  notes.forEach((n, i) => { legend += text(16, legendY + 32 + 16 * i, UNIT, n, 'fill="#555"'); });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif">
<rect width="100%" height="100%" fill="white"/>
${text(16, 24, 16, 'tws-native benchmark', 'font-weight="bold"')}
${text(16, 42, UNIT, subtitle, 'fill="#555"')}
${body}${legend}
</svg>
`;
}
