/** Renders the benchmark runs as one SVG: throughput, latency and connection-rate panels. */
import type { Run } from './report';

const COLORS: Record<string, string> = { direct: '#7f8c8d', js: '#e67e22', native: '#2980b9' };
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

interface Bar { group: string; engine: string; value: number; label: string }

function panel(title: string, unit: string, bars: Bar[], x0: number, width: number, height: number): string {
  const groups = [...new Set(bars.map((b) => b.group))];
  const engines = [...new Set(bars.map((b) => b.engine))];
  const max = Math.max(1e-9, ...bars.map((b) => b.value));
  const top = 56;
  const bottom = height - 50;
  const gw = (width - 40) / Math.max(1, groups.length);
  const bw = Math.min(40, (gw - 10) / Math.max(1, engines.length));
  let out = `<text x="${x0 + width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`;
  out += `<text x="${x0 + 6}" y="${top - 18}" font-size="11" fill="#555">${esc(unit)}</text>`;
  out += `<line x1="${x0 + 30}" y1="${bottom}" x2="${x0 + width - 5}" y2="${bottom}" stroke="#333"/>`;
  groups.forEach((g, gi) => {
    const gx = x0 + 35 + gi * gw;
    engines.forEach((e, ei) => {
      const b = bars.find((x) => x.group === g && x.engine === e);
      if (!b) return;
      const h = ((bottom - top) * b.value) / max;
      const x = gx + ei * bw;
      out += `<rect x="${x.toFixed(1)}" y="${(bottom - h).toFixed(1)}" width="${(bw - 3).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[e] ?? '#999'}"><title>${esc(`${g} ${e}: ${b.label}`)}</title></rect>`;
      out += `<text x="${(x + (bw - 3) / 2).toFixed(1)}" y="${(bottom - h - 3).toFixed(1)}" text-anchor="middle" font-size="9">${esc(b.label)}</text>`;
    });
    out += `<text x="${(gx + (engines.length * bw) / 2).toFixed(1)}" y="${bottom + 15}" text-anchor="middle" font-size="11">${esc(g)}</text>`;
  });
  return out;
}

export function renderSvg(runs: Run[], subtitle: string): string {
  const thr: Bar[] = [];
  const lat: Bar[] = [];
  const rate: Bar[] = [];
  for (const r of runs) {
    if (r.gbps !== undefined) {
      const group = r.scenario === 'throughput' ? (r.direction ?? '') : r.scenario === 'parallel' ? 'parallel -P 8' : '';
      if (group) thr.push({ group, engine: r.engine, value: r.gbps, label: r.gbps.toFixed(2) });
    }
    if (r.p50_us !== undefined && r.p99_us !== undefined) {
      const names: Partial<Record<Run['scenario'], string>> = { latency: 'idle', latency_busy_poll: 'busy-poll', latency_under_1g: 'under 1G load' };
      const name = names[r.scenario] ?? 'under load';
      lat.push({ group: `${name} p50`, engine: r.engine, value: r.p50_us, label: r.p50_us.toFixed(0) });
      lat.push({ group: `${name} p99`, engine: r.engine, value: r.p99_us, label: r.p99_us.toFixed(0) });
    }
    if (r.conns_per_s !== undefined) rate.push({ group: 'connect, echo, close', engine: r.engine, value: r.conns_per_s, label: r.conns_per_s.toFixed(0) });
  }
  const w = 1200;
  const h = 360;
  const engines = [...new Set(runs.map((r) => r.engine))];
  const legend = engines.map((e, i) => `<rect x="${20 + i * 110}" y="${h - 22}" width="12" height="12" fill="${COLORS[e] ?? '#999'}"/><text x="${36 + i * 110}" y="${h - 12}" font-size="12">${esc(e)}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${panel('Throughput', 'Gbit/s (higher is better)', thr, 0, 460, h - 30)}
${panel('Round-trip latency, 64 B', 'µs (lower is better)', lat, 460, 480, h - 30)}
${panel('Connection rate', 'conns/s (higher is better)', rate, 940, 260, h - 30)}
${legend}
<text x="${w - 10}" y="${h - 12}" text-anchor="end" font-size="11" fill="#555">${esc(subtitle)}</text>
</svg>
`;
}
