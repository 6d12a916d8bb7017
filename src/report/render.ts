// Chart specs -> SVG (vega-lite compiles to a vega spec, vega renders it headless with no canvas,
// laying text out with DejaVu Sans's widths) -> PNG (resvg, drawing text with the system's fonts).
// vega, vega-lite and resvg are imported on first use so that commands which draw nothing do not
// pay for loading them.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import type { EvalResults } from '../eval/run.js';
import { writeDirAtomic } from '../util/atomic.js';
import { evalCharts, type Chart, type EvalRun } from './charts.js';
import { textWidth } from './textwidth.js';

export interface SvgOptions {
  /** called with each warning of vega-lite or vega (a spec that compiles with warnings still renders) */
  onWarning?: (message: string) => void;
}

export interface RenderedChart extends Chart {
  svg: string;
}

type Vega = typeof import('vega');
type VegaLite = typeof import('vega-lite');
let libs: Promise<{ vega: Vega; vl: VegaLite }> | null = null;
function load(): Promise<{ vega: Vega; vl: VegaLite }> {
  libs ??= Promise.all([import('vega'), import('vega-lite')]).then(([vega, vl]) => {
    useFontMetrics(vega);
    return { vega, vl };
  });
  return libs;
}

interface TextItem { fontSize?: number; fontWeight?: string | number; limit?: number }
interface TextMetrics { width(item: TextItem, text?: unknown): number; estimateWidth: unknown }

/**
 * Without a canvas vega guesses text widths (see textwidth.ts); give it DejaVu Sans's real ones.
 * textMetrics.width is vega's hook for this (its source names vl-convert as a user); it is not in
 * vega's typings.
 * Left alone when a canvas package measures text.
 */
function useFontMetrics(vega: Vega): void {
  const tm = (vega as unknown as { textMetrics?: TextMetrics }).textMetrics;
  if (!tm || tm.width !== tm.estimateWidth) return;
  tm.width = (item, text) => {
    const size = item.fontSize ?? 11;
    const bold = item.fontWeight === 'bold' || (typeof item.fontWeight === 'number' && item.fontWeight >= 600);
    const w = textWidth(text == null ? '' : String(text).trim(), size, bold);
    // vega truncates labels to `limit` by bisecting on this function: capping keeps that consistent
    return item.limit !== undefined && item.limit > 0 ? Math.min(w, item.limit) : w;
  };
}

/** A vega-lite spec as an SVG document (with its XML namespace: it stands alone as a .svg file). */
export async function specToSvg(spec: TopLevelSpec, opts: SvgOptions = {}): Promise<string> {
  const { vega, vl } = await load();
  const warn = opts.onWarning ?? ((m: string) => { if (process.env.LONGCTX_DEBUG) process.stderr.write(`chart warning: ${m}\n`); });
  // Both libraries log through vega-util loggers; route warnings to one callback and make errors throw.
  const logger = vega.logger(vega.Warn, undefined, (method, _level, args) => {
    const msg = args.map(String).join(' ');
    if (method === 'error') throw new Error(`chart: ${msg}`);
    warn(msg);
  });
  const compiled = vl.compile(spec, { logger }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize(); // drops timers and listeners so the process can exit
  }
}

/** SVG -> PNG bytes at `scale` x the SVG's pixel size (2: crisp on high-density screens and in print). */
export async function svgToPng(svg: string, scale = 2): Promise<Uint8Array> {
  if (!(scale > 0 && scale <= 8)) throw new RangeError(`PNG scale must be in (0, 8], got ${scale}`);
  const { Resvg } = await import('@resvg/resvg-js');
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: true, sansSerifFamily: 'DejaVu Sans', defaultFontFamily: 'DejaVu Sans' },
    logLevel: 'off',
  });
  return r.render().asPng();
}

/** Renders each chart to SVG. */
export async function renderCharts(charts: Chart[], opts: SvgOptions = {}): Promise<RenderedChart[]> {
  const out: RenderedChart[] = [];
  for (const c of charts) out.push({ ...c, svg: await specToSvg(c.spec, opts) });
  return out;
}

export interface WriteChartsOptions extends SvgOptions {
  /** the legend's name for the run (default: the folder's name) */
  name?: string;
  /** PNG pixel ratio (default 2) */
  scale?: number;
}

/**
 * Writes DIR/charts/: for every chart the results have data for, ID.svg, ID.png and ID.vl.json (the
 * vega-lite spec, to restyle it in the Vega editor). The folder is replaced as a whole, so charts of
 * tasks that a re-run (--force) no longer has do not linger. Returns the files written.
 */
export async function writeEvalCharts(dir: string, results: EvalResults, opts: WriteChartsOptions = {}): Promise<string[]> {
  const run: EvalRun = { name: opts.name ?? path.basename(path.resolve(dir)), results, dir };
  const rendered = await renderCharts(evalCharts([run]), opts);
  const files: { name: string; data: string | Uint8Array }[] = [];
  for (const c of rendered) {
    files.push({ name: `${c.id}.svg`, data: c.svg });
    files.push({ name: `${c.id}.png`, data: await svgToPng(c.svg, opts.scale ?? 2) });
    files.push({ name: `${c.id}.vl.json`, data: JSON.stringify(c.spec, null, 2) + '\n' });
  }
  const chartsDir = path.join(dir, 'charts');
  writeDirAtomic(chartsDir, (tmp) => {
    for (const f of files) writeFileSync(path.join(tmp, f.name), f.data);
  });
  return files.map((f) => path.join(chartsDir, f.name));
}
