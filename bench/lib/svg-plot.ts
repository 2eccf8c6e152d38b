/**
 * A small SVG line-chart writer for the long-run benchmarks (spike, soak): one panel per
 * series stacked over a shared time axis, each with its own y axis, unit, grid and legend,
 * and optional vertical markers (phase changes, scale events) drawn across every panel.
 * Pure and dependency-free: the output is a string, viewable in a browser and on GitHub.
 */

export type Point = readonly [x: number, y: number | null];

export interface Line {
  label: string;
  points: readonly Point[];
  /** CSS colour; a palette colour by position otherwise. */
  color?: string;
  dashed?: boolean;
}

export interface Panel {
  title: string;
  /** Shown beside the y axis (e.g. "tx/s", "MiB"). */
  unit: string;
  lines: Line[];
  /** Draw y from 0 even when every value is far above it (default true). */
  fromZero?: boolean;
  /** Whole-number ticks only (counts such as replicas). */
  integer?: boolean;
}

export interface Marker {
  x: number;
  label: string;
  color?: string;
}

export interface Chart {
  title: string;
  /** A second line under the title: machine, flags. */
  subtitle?: string;
  xLabel: string;
  panels: Panel[];
  markers?: Marker[];
  width?: number;
  panelHeight?: number;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];
const FONT = "font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif";

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Round tick positions (1, 2, 2.5, 5 × 10^k) covering [min, max], about `target` of them. */
export function niceTicks(min: number, max: number, target = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max < min) [min, max] = [max, min];
  if (max === min) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    [min, max] = [min - pad, max + pad];
  }
  const rough = (max - min) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= rough) ?? 10 * mag;
  const first = Math.floor(min / step) * step;
  const out: number[] = [];
  for (let v = first; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if ((out.at(-1) ?? Number.NEGATIVE_INFINITY) < max) out.push(Number((out.at(-1)! + step).toPrecision(12)));
  return out;
}

/** Compact tick label: 1.5K, 2M, 0.25, 12. */
export function tickLabel(v: number): string {
  const a = Math.abs(v);
  const trim = (x: number) => String(Number(x.toPrecision(3)));
  if (a >= 1e9) return `${trim(v / 1e9)}G`;
  if (a >= 1e6) return `${trim(v / 1e6)}M`;
  if (a >= 1e3) return `${trim(v / 1e3)}K`;
  return trim(v);
}

function extent(values: number[]): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Path data for a line; a null breaks it into separate runs. */
function pathData(points: readonly Point[], sx: (x: number) => number, sy: (y: number) => number): string {
  const parts: string[] = [];
  let pen = false;
  for (const [x, y] of points) {
    if (y === null || !Number.isFinite(y) || !Number.isFinite(x)) {
      pen = false;
      continue;
    }
    parts.push(`${pen ? "L" : "M"}${sx(x).toFixed(1)} ${sy(y).toFixed(1)}`);
    pen = true;
  }
  return parts.join(" ");
}

export function renderSvg(chart: Chart): string {
  const width = chart.width ?? 960;
  const ph = chart.panelHeight ?? 150;
  const left = 78;
  const right = 24;
  // Title, subtitle, then a strip for the marker labels above the first panel's title.
  const top = (chart.subtitle ? 58 : 40) + (chart.markers?.length ? 20 : 0);
  const panelGap = 42;
  const bottom = 46;
  const plotW = width - left - right;
  const height = top + chart.panels.length * (ph + panelGap) - panelGap + bottom;

  const xs = chart.panels.flatMap((p) => p.lines.flatMap((l) => l.points.map((pt) => pt[0])));
  for (const m of chart.markers ?? []) xs.push(m.x);
  const xFinite = xs.filter(Number.isFinite);
  const [x0, x1raw] = xFinite.length ? extent(xFinite) : [0, 1];
  const x1 = x1raw > x0 ? x1raw : x0 + 1;
  const xTicks = niceTicks(x0, x1, 10).filter((v) => v >= x0 - 1e-9 && v <= x1 + 1e-9);
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * plotW;

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" style="${FONT}">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${left}" y="22" font-size="16" font-weight="600">${escapeXml(chart.title)}</text>`,
  ];
  if (chart.subtitle)
    out.push(`<text x="${left}" y="42" font-size="11" fill="#555">${escapeXml(chart.subtitle)}</text>`);

  chart.panels.forEach((panel, i) => {
    const py = top + i * (ph + panelGap);
    const ys = panel.lines.flatMap((l) =>
      l.points.flatMap((p) => (p[1] !== null && Number.isFinite(p[1]) ? [p[1]] : [])),
    );
    let [lo, hi] = ys.length ? extent(ys) : [0, 1];
    if (panel.fromZero ?? true) lo = Math.min(0, lo);
    let yTicks = niceTicks(lo, hi, 4);
    if (panel.integer) {
      yTicks = yTicks.filter(Number.isInteger);
      if (yTicks.length < 2)
        yTicks = [Math.floor(lo), Math.ceil(hi) > Math.floor(lo) ? Math.ceil(hi) : Math.floor(lo) + 1];
    }
    const y0 = yTicks[0] ?? lo;
    const y1 = yTicks.at(-1) ?? hi;
    const sy = (y: number) => py + ph - ((y - y0) / (y1 - y0 || 1)) * ph;

    out.push(`<g>`);
    out.push(
      `<text x="${left}" y="${py - 8}" font-size="12" font-weight="600">${escapeXml(panel.title)}</text>`,
    );
    out.push(
      `<text transform="translate(16 ${py + ph / 2}) rotate(-90)" font-size="11" fill="#555" text-anchor="middle">${escapeXml(panel.unit)}</text>`,
    );
    for (const t of yTicks) {
      const y = sy(t).toFixed(1);
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
      out.push(
        `<text x="${left - 6}" y="${y}" font-size="10" text-anchor="end" dominant-baseline="middle">${tickLabel(t)}</text>`,
      );
    }
    for (const t of xTicks) {
      const x = sx(t).toFixed(1);
      out.push(`<line x1="${x}" x2="${x}" y1="${py}" y2="${py + ph}" stroke="#f0f0f0"/>`);
      out.push(
        `<text x="${x}" y="${py + ph + 14}" font-size="10" text-anchor="middle">${tickLabel(t)}</text>`,
      );
    }
    out.push(`<rect x="${left}" y="${py}" width="${plotW}" height="${ph}" fill="none" stroke="#999"/>`);
    let lastLabelX = Number.NEGATIVE_INFINITY;
    for (const m of chart.markers ?? []) {
      const x = sx(m.x).toFixed(1);
      out.push(
        `<line x1="${x}" x2="${x}" y1="${py}" y2="${py + ph}" stroke="${m.color ?? "#888"}" stroke-dasharray="4 3"/>`,
      );
      // Markers closer than a label's width keep their line and lose the text.
      if (i === 0 && sx(m.x) - lastLabelX >= 28) {
        lastLabelX = sx(m.x);
        // Near an edge the label runs inwards instead of off the picture.
        const anchor = sx(m.x) < left + 30 ? "start" : sx(m.x) > left + plotW - 30 ? "end" : "middle";
        out.push(
          `<text x="${x}" y="${py - 26}" font-size="10" fill="${m.color ?? "#555"}" text-anchor="${anchor}">${escapeXml(m.label)}</text>`,
        );
      }
    }
    const colors = panel.lines.map((line, j) => line.color ?? PALETTE[j % PALETTE.length]!);
    const dash = (line: Line) => (line.dashed ? ` stroke-dasharray="6 3"` : "");
    panel.lines.forEach((line, j) => {
      const d = pathData(line.points, sx, sy);
      if (d) out.push(`<path d="${d}" fill="none" stroke="${colors[j]}" stroke-width="1.6"${dash(line)}/>`);
    });
    // Legend on a white box, top right inside the panel, one row per line.
    const lx = left + plotW - 170;
    out.push(
      `<rect x="${lx - 6}" y="${py + 4}" width="170" height="${panel.lines.length * 14 + 4}" fill="#fff" fill-opacity="0.85"/>`,
    );
    panel.lines.forEach((line, j) => {
      const ly = py + 12 + j * 14;
      out.push(
        `<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${colors[j]}" stroke-width="2"${dash(line)}/>`,
      );
      out.push(
        `<text x="${lx + 22}" y="${ly}" font-size="10" dominant-baseline="middle">${escapeXml(line.label)}</text>`,
      );
    });
    out.push(`</g>`);
  });
  const axisY = top + chart.panels.length * (ph + panelGap) - panelGap + 34;
  out.push(
    `<text x="${left + plotW / 2}" y="${axisY}" font-size="11" text-anchor="middle">${escapeXml(chart.xLabel)}</text>`,
  );
  out.push(`</svg>`);
  return `${out.join("\n")}\n`;
}
