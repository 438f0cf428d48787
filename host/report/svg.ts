// Minimal inline-SVG charts for the HTML report: line chart with event markers, grouped bars,
// event lanes, horizontal bars and a sparkline. Output is plain SVG markup (no script, no external
// fonts or images), so the report stays one self-contained file.
import { escapeHtml } from './common.js';

export interface Point { x: number; y: number }
export interface Series { name: string; color: string; points: Point[] }
export interface Marker { x: number; color: string; label: string }

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

const FONT = 'font-family="system-ui, sans-serif" font-size="11"';

/** About `count` round tick values covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max === min) { max = min + 1; }
  const span = max - min;
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  return out;
}

function fmtTick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(0)}k`;
  if (a >= 100 || v === Math.round(v)) return String(Math.round(v));
  return String(+v.toFixed(2));
}

interface Frame { w: number; h: number; left: number; right: number; top: number; bottom: number }

function frameOf(w: number, h: number, legendRows: number): Frame {
  return { w, h, left: 56, right: 12, top: 24 + legendRows * 14, bottom: 30 };
}

function svgOpen(id: string, title: string, f: Frame, extra = ''): string {
  return `<svg id="${escapeHtml(id)}" class="chart" viewBox="0 0 ${f.w} ${f.h}" width="${f.w}" height="${f.h}" role="img" aria-label="${escapeHtml(title)}" ${extra}>` +
    `<title>${escapeHtml(title)}</title><rect x="0" y="0" width="${f.w}" height="${f.h}" fill="#fff"/>`;
}

function legend(series: Array<{ name: string; color: string }>, f: Frame): string {
  let x = f.left, y = 14;
  const parts: string[] = [];
  for (const s of series) {
    const wdt = 18 + s.name.length * 6.2;
    if (x + wdt > f.w - f.right) { x = f.left; y += 14; }
    parts.push(`<rect x="${x}" y="${y - 8}" width="10" height="10" fill="${s.color}"/><text x="${x + 13}" y="${y + 1}" ${FONT}>${escapeHtml(s.name)}</text>`);
    x += wdt + 10;
  }
  return parts.join('');
}

function legendRows(series: Array<{ name: string }>, w: number): number {
  let x = 56, rows = 1;
  for (const s of series) {
    const wdt = 18 + s.name.length * 6.2;
    if (x + wdt > w - 12) { x = 56; rows++; }
    x += wdt + 10;
  }
  return rows;
}

export function emptyChart(id: string, title: string, message: string, w = 720, h = 120): string {
  const f = frameOf(w, h, 0);
  return `${svgOpen(id, title, f, 'data-empty="true"')}<text x="${w / 2}" y="${h / 2}" text-anchor="middle" ${FONT} fill="#666">${escapeHtml(message)}</text></svg>`;
}

export interface LineChartSpec {
  id: string;
  title: string;
  series: Series[];
  markers?: Marker[];
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
}

export function lineChart(spec: LineChartSpec): string {
  const series = spec.series.filter((s) => s.points.length > 0);
  const w = spec.width ?? 720, h = spec.height ?? 300;
  if (!series.length) return emptyChart(spec.id, spec.title, 'no data', w);
  const f = frameOf(w, h, legendRows(series, w));
  const xs = series.flatMap((s) => s.points.map((p) => p.x)).concat((spec.markers ?? []).map((m) => m.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }
  let y0 = Math.min(0, ...ys), y1 = Math.max(...ys);
  if (y1 === y0) y1 = y0 + 1;
  const yt = niceTicks(y0, y1);
  y1 = Math.max(y1, yt[yt.length - 1] ?? y1);
  y0 = Math.min(y0, yt[0] ?? y0);
  const px = (x: number) => f.left + ((x - x0) / (x1 - x0)) * (f.w - f.left - f.right);
  const py = (y: number) => f.h - f.bottom - ((y - y0) / (y1 - y0)) * (f.h - f.top - f.bottom);
  const parts: string[] = [svgOpen(spec.id, spec.title, f), legend(series, f)];
  for (const t of yt) parts.push(`<line x1="${f.left}" x2="${f.w - f.right}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#e5e5e5"/><text x="${f.left - 4}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end" ${FONT}>${fmtTick(t)}</text>`);
  for (const t of niceTicks(x0, x1, 8)) parts.push(`<text x="${px(t).toFixed(1)}" y="${f.h - f.bottom + 14}" text-anchor="middle" ${FONT}>${fmtTick(t)}</text>`);
  parts.push(`<text x="${(f.left + f.w - f.right) / 2}" y="${f.h - 3}" text-anchor="middle" ${FONT} fill="#444">${escapeHtml(spec.xLabel)}</text>`);
  parts.push(`<text transform="translate(12 ${(f.top + f.h - f.bottom) / 2}) rotate(-90)" text-anchor="middle" ${FONT} fill="#444">${escapeHtml(spec.yLabel)}</text>`);
  parts.push(`<line x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.h - f.bottom}" stroke="#999"/><line x1="${f.left}" x2="${f.w - f.right}" y1="${f.h - f.bottom}" y2="${f.h - f.bottom}" stroke="#999"/>`);
  for (const m of spec.markers ?? []) {
    parts.push(`<line class="marker" x1="${px(m.x).toFixed(1)}" x2="${px(m.x).toFixed(1)}" y1="${f.top}" y2="${f.h - f.bottom}" stroke="${m.color}" stroke-dasharray="3 3"><title>${escapeHtml(m.label)}</title></line>`);
  }
  for (const s of series) {
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${px(p.x).toFixed(1)} ${py(p.y).toFixed(1)}`).join('');
    parts.push(`<path class="series" data-name="${escapeHtml(s.name)}" d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"/>`);
    if (s.points.length <= 60) for (const p of s.points) parts.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="2.2" fill="${s.color}"><title>${escapeHtml(`${s.name}: ${fmtTick(p.y)} at ${fmtTick(p.x)}`)}</title></circle>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

export interface BarGroup { label: string; values: Array<{ name: string; color: string; value: number }> }

/** Grouped vertical bars on a log10(1+v) scale (free blocks per order span 0..10^6). */
export function logBarChart(id: string, title: string, groups: BarGroup[], xLabel: string, yLabel: string, w = 720, h = 220): string {
  if (!groups.length) return emptyChart(id, title, 'no data', w);
  const names = groups[0].values.map((v) => ({ name: v.name, color: v.color }));
  const f = frameOf(w, h, legendRows(names, w));
  const maxV = Math.max(1, ...groups.flatMap((g) => g.values.map((v) => v.value)));
  const top = Math.ceil(Math.log10(1 + maxV));
  const py = (v: number) => f.h - f.bottom - (Math.log10(1 + v) / top) * (f.h - f.top - f.bottom);
  const gw = (f.w - f.left - f.right) / groups.length;
  const bw = Math.max(2, (gw - 6) / Math.max(1, names.length));
  const parts: string[] = [svgOpen(id, title, f), legend(names, f)];
  for (let e = 0; e <= top; e++) {
    const y = py(10 ** e - 1);
    parts.push(`<line x1="${f.left}" x2="${f.w - f.right}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#eee"/><text x="${f.left - 4}" y="${(y + 4).toFixed(1)}" text-anchor="end" ${FONT}>${fmtTick(10 ** e - 1)}</text>`);
  }
  groups.forEach((g, i) => {
    const gx = f.left + i * gw + 3;
    g.values.forEach((v, j) => {
      const y = py(v.value);
      parts.push(`<rect class="bar" x="${(gx + j * bw).toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${(f.h - f.bottom - y).toFixed(1)}" fill="${v.color}"><title>${escapeHtml(`${g.label} ${v.name}: ${v.value}`)}</title></rect>`);
    });
    parts.push(`<text x="${(gx + gw / 2 - 3).toFixed(1)}" y="${f.h - f.bottom + 14}" text-anchor="middle" ${FONT}>${escapeHtml(g.label)}</text>`);
  });
  parts.push(`<text x="${(f.left + f.w - f.right) / 2}" y="${f.h - 3}" text-anchor="middle" ${FONT} fill="#444">${escapeHtml(xLabel)}</text>`);
  parts.push(`<text transform="translate(12 ${(f.top + f.h - f.bottom) / 2}) rotate(-90)" text-anchor="middle" ${FONT} fill="#444">${escapeHtml(yLabel)}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

export interface Lane { name: string; color: string; events: Array<{ x: number; label: string }> }

/** One row per event kind, a dot per event, on the same x axis as the memory chart. */
export function laneChart(id: string, title: string, lanes: Lane[], xRange: [number, number] | null, xLabel: string, w = 720): string {
  const used = lanes.filter((l) => l.events.length);
  if (!used.length) return emptyChart(id, title, 'no OOM, LMK, allocation-failure or kmemleak events', w, 80);
  const h = 40 + used.length * 22 + 20;
  const f: Frame = { w, h, left: 130, right: 12, top: 16, bottom: 30 };
  const xs = used.flatMap((l) => l.events.map((e) => e.x));
  let [x0, x1] = xRange ?? [Math.min(...xs), Math.max(...xs)];
  x0 = Math.min(x0, ...xs); x1 = Math.max(x1, ...xs);
  if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }
  const px = (x: number) => f.left + ((x - x0) / (x1 - x0)) * (f.w - f.left - f.right);
  const parts: string[] = [svgOpen(id, title, f)];
  used.forEach((l, i) => {
    const y = f.top + 10 + i * 22;
    parts.push(`<text x="${f.left - 6}" y="${y + 4}" text-anchor="end" ${FONT}>${escapeHtml(`${l.name} (${l.events.length})`)}</text><line x1="${f.left}" x2="${f.w - f.right}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    for (const e of l.events) parts.push(`<circle class="event" cx="${px(e.x).toFixed(1)}" cy="${y}" r="4" fill="${l.color}" fill-opacity="0.8"><title>${escapeHtml(e.label)}</title></circle>`);
  });
  const axisY = f.top + 10 + used.length * 22;
  for (const t of niceTicks(x0, x1, 8)) parts.push(`<text x="${px(t).toFixed(1)}" y="${axisY + 6}" text-anchor="middle" ${FONT}>${fmtTick(t)}</text>`);
  parts.push(`<text x="${(f.left + f.w - f.right) / 2}" y="${h - 4}" text-anchor="middle" ${FONT} fill="#444">${escapeHtml(xLabel)}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

/** Horizontal bars (e.g. slab caches by bytes per hour). */
export function hBarChart(id: string, title: string, bars: Array<{ label: string; value: number; text: string }>, w = 720): string {
  if (!bars.length) return emptyChart(id, title, 'no slab cache grew', w, 80);
  const h = 20 + bars.length * 18 + 10;
  const left = 200, right = 90;
  const max = Math.max(...bars.map((b) => Math.abs(b.value)), 1);
  const parts: string[] = [svgOpen(id, title, { w, h, left, right, top: 10, bottom: 10 })];
  bars.forEach((b, i) => {
    const y = 14 + i * 18;
    const bw = (Math.abs(b.value) / max) * (w - left - right);
    parts.push(`<text x="${left - 6}" y="${y + 10}" text-anchor="end" ${FONT}>${escapeHtml(b.label)}</text><rect class="bar" x="${left}" y="${y}" width="${bw.toFixed(1)}" height="13" fill="${b.value >= 0 ? '#d62728' : '#2ca02c'}"/><text x="${(left + bw + 4).toFixed(1)}" y="${y + 10}" ${FONT}>${escapeHtml(b.text)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

/** Small inline sparkline for table cells. */
export function svgSparkline(values: readonly number[], w = 90, h = 18, color = '#d62728'): string {
  if (values.length < 2) return '';
  const min = Math.min(...values), max = Math.max(...values);
  const span = max - min || 1;
  const d = values.map((v, i) => `${i ? 'L' : 'M'}${((i / (values.length - 1)) * (w - 2) + 1).toFixed(1)} ${(h - 1 - ((v - min) / span) * (h - 2)).toFixed(1)}`).join('');
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/></svg>`;
}
