/**
 * Whether a long-run series grows: least-squares slope and a stated definition of "flat".
 *
 * Flat means the fitted line moves less over the judged span than a share of the series'
 * mean there (default 10%), or less than an absolute floor for series whose mean sits near
 * zero and whose noise is a known quantum (consumer lag jitters by about a batch). Samples
 * before `fromS` are not judged: windows, caches and the JIT fill up first, and a series
 * that grows by design until a known point (dedup keys until their TTL) is judged from there.
 */

export interface Fit {
  /** Change per second. */
  slope: number;
  /** Value at x = 0. */
  intercept: number;
}

/** Ordinary least squares of y on x; slope 0 for fewer than two distinct x. */
export function leastSquares(points: readonly (readonly [number, number])[]): Fit {
  const n = points.length;
  if (n === 0) return { slope: 0, intercept: Number.NaN };
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) * (x - mx);
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  return { slope, intercept: my - slope * mx };
}

export interface TrendOptions {
  /** Seconds: samples before this are left out of the judgement. */
  fromS: number;
  /** Flat when |slope × span| < flatShare × |mean| (default 0.1). */
  flatShare?: number;
  /** ... or < this absolute change (default 0). */
  flatFloor?: number;
  /** Samples averaged for the start and end values (default 3). */
  edge?: number;
}

export interface Trend {
  /** Samples judged (at or after fromS). */
  n: number;
  fromS: number;
  toS: number;
  /** Mean of the first / last `edge` judged samples. */
  start: number;
  end: number;
  mean: number;
  min: number;
  max: number;
  slopePerMin: number;
  /** Fitted change over the judged span: slope × (toS − fromS). */
  change: number;
  /** change / |mean| (NaN for a zero mean). */
  relativeChange: number;
  /** null when fewer than 3 samples could be judged. */
  flat: boolean | null;
}

/** Trend of (seconds, value) points; nulls (a sample that could not be read) are skipped. */
export function trend(points: readonly (readonly [number, number | null])[], opts: TrendOptions): Trend {
  const share = opts.flatShare ?? 0.1;
  const floor = opts.flatFloor ?? 0;
  const edge = Math.max(1, opts.edge ?? 3);
  const judged = points.filter(
    (p): p is [number, number] => p[1] !== null && Number.isFinite(p[1]) && p[0] >= opts.fromS,
  );
  const ys = judged.map((p) => p[1]);
  const n = judged.length;
  const mean = n ? ys.reduce((a, b) => a + b, 0) / n : Number.NaN;
  const avg = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
  const fromS = judged[0]?.[0] ?? opts.fromS;
  const toS = judged.at(-1)?.[0] ?? opts.fromS;
  const { slope } = leastSquares(judged);
  const change = slope * (toS - fromS);
  const relativeChange = mean !== 0 ? change / Math.abs(mean) : Number.NaN;
  return {
    n,
    fromS,
    toS,
    start: avg(ys.slice(0, edge)),
    end: avg(ys.slice(-edge)),
    mean,
    min: n ? Math.min(...ys) : Number.NaN,
    max: n ? Math.max(...ys) : Number.NaN,
    slopePerMin: slope * 60,
    change,
    relativeChange,
    flat: n < 3 ? null : Math.abs(change) <= Math.max(share * Math.abs(mean), floor),
  };
}
