// One self-contained HTML page comparing eval runs: inline CSS, charts as inline SVG, no scripts and
// no external URLs (it opens offline and can be mailed as one file). The page is a title plus a list
// of sections ({ heading, html }); the builders below make the standard ones from runs' results, and
// callers (e.g. a repro report) add their own sections around them. Every piece of text that comes
// from data goes through escapeHtml; section html is trusted (it is built here or by the caller).

import { evalCharts, figure1Series, fmtLength, runColor, type ChartId, type EvalRun } from './charts.js';
import { FIT_BETA_MIN, FIT_MIN_DROP, FIT_R2_MIN } from '../eval/powerlaw.js';
import { renderCharts, type SvgOptions } from './render.js';
import { VERSION } from '../version.js';

export interface ReportSection {
  heading: string;
  /** trusted HTML (escape data with escapeHtml) */
  html: string;
  /** anchor (default: from the heading) */
  id?: string;
}

export interface ReportPage {
  title: string;
  /** a line under the title (plain text) */
  subtitle?: string;
  /** shown as a colour legend under the title: one entry per run */
  runs?: EvalRun[];
  sections: ReportSection[];
  /** the footer's date (default now); fixed in tests for reproducible pages */
  generatedAt?: Date;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text -> HTML text or attribute value. */
export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

const anchor = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'section';

const CSS = `
:root { color-scheme: light; }
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 0 auto; padding: 24px 32px 48px; max-width: 1280px; color: #222; line-height: 1.45; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 20px 0 6px; }
p.subtitle { color: #555; margin: 0 0 12px; }
nav ul { list-style: none; padding: 0; margin: 8px 0; display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 14px; }
nav a { color: #2a5db0; text-decoration: none; }
ul.legend { list-style: none; padding: 0; margin: 8px 0 0; display: flex; flex-wrap: wrap; gap: 6px 20px; font-size: 14px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 4px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f5f5f5; font-weight: 600; }
th[scope=row], thead th:first-child { text-align: left; }
td.text { text-align: left; white-space: normal; max-width: 420px; overflow-wrap: anywhere; }
td.beyond { color: #8a5a00; }
td.flagged { color: #b00020; font-weight: 600; }
tr.group th { text-align: center; }
p.note { color: #555; font-size: 13px; margin: 4px 0 12px; }
table.claims th, table.claims td { vertical-align: top; }
table.claims thead th { text-align: left; }
.verdict { font-weight: bold; white-space: nowrap; }
.verdict.yes { color: #1a7f37; }
.verdict.no { color: #b42318; }
.verdict.maybe { color: #9a6700; }
figure { margin: 14px 0 22px; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 13px; margin-top: 4px; max-width: 900px; }
footer { margin-top: 40px; color: #777; font-size: 12px; }
`;

/** The colour legend of the runs (same colours as the charts). */
export function runLegendHtml(runs: EvalRun[]): string {
  return `<ul class="legend">${runs.map((r, i) => `<li class="legend-entry"><span class="swatch" style="background:${runColor(i)}"></span>${escapeHtml(r.name)}</li>`).join('')}</ul>`;
}

/** The whole page. */
export function renderReport(page: ReportPage): string {
  const ids = new Set<string>();
  const sections = page.sections.map((s) => {
    let id = anchor(s.id ?? s.heading);
    for (let k = 2; ids.has(id); k++) id = `${anchor(s.id ?? s.heading)}-${k}`;
    ids.add(id);
    return { ...s, id };
  });
  const when = (page.generatedAt ?? new Date()).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="longctx ${escapeHtml(VERSION)}">
<title>${escapeHtml(page.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${escapeHtml(page.title)}</h1>
${page.subtitle ? `<p class="subtitle">${escapeHtml(page.subtitle)}</p>\n` : ''}${page.runs && page.runs.length > 0 ? runLegendHtml(page.runs) + '\n' : ''}${sections.length > 1 ? `<nav><ul>${sections.map((s) => `<li><a href="#${s.id}">${escapeHtml(s.heading)}</a></li>`).join('')}</ul></nav>\n` : ''}</header>
<main>
${sections.map((s) => `<section id="${s.id}">\n<h2>${escapeHtml(s.heading)}</h2>\n${s.html}\n</section>`).join('\n')}
</main>
<footer>generated by longctx ${escapeHtml(VERSION)} on ${escapeHtml(when)}</footer>
</body>
</html>
`;
}

// ---- numbers ----

const DASH = '–';
/** a score in [0, 1] as a percentage with one decimal, as the paper's tables print them */
export function fmtPct(x: number | null | undefined): string {
  return typeof x === 'number' && Number.isFinite(x) ? (100 * x).toFixed(1) : DASH;
}
/** perplexity with three decimals (paper Table 5) */
export function fmtPpl(x: number | null | undefined): string {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(3) : DASH;
}

interface Cell { text: string; beyond?: boolean; cls?: string }
const cell = (c: Cell): string => `<td${c.beyond ? ' class="beyond"' : c.cls ? ` class="${c.cls}"` : ''}>${escapeHtml(c.text)}${c.beyond ? '*' : ''}</td>`;
const rowHead = (runs: EvalRun[], r: EvalRun): string => `<th scope="row"><span class="swatch" style="background:${runColor(runs.indexOf(r))}"></span>${escapeHtml(r.name)}</th>`;

/**
 * A table with a row per run in `rows` (default all runs): `columns` as [header, cell per run].
 * Swatch colours come from the run's place in `runs`, so a subset keeps each run's colour.
 */
function runTable(runs: EvalRun[], columns: { header: string; cell: (r: EvalRun) => Cell }[], cls: string, group?: { header: string; span: number }[], rows: EvalRun[] = runs): string {
  const groupRow = group ? `<tr class="group"><th></th>${group.map((g) => `<th colspan="${g.span}">${escapeHtml(g.header)}</th>`).join('')}</tr>` : '';
  return `<div class="scroll"><table class="${cls}">
<thead>${groupRow}<tr><th scope="col">run</th>${columns.map((c) => `<th scope="col">${escapeHtml(c.header)}</th>`).join('')}</tr></thead>
<tbody>
${rows.map((r) => `<tr>${rowHead(runs, r)}${columns.map((c) => cell(c.cell(r))).join('')}</tr>`).join('\n')}
</tbody>
</table></div>`;
}

const uniqSorted = (xs: number[]): number[] => [...new Set(xs)].sort((a, b) => a - b);

/**
 * The paper's Table 5 for these runs: perplexity at every evaluated context length (beyond the
 * trained context marked *), then the retrieval and downstream scores (%), one row per run.
 */
/**
 * Whether the runs saw the same held-out text: what differs between them among the evaluation seed,
 * --max-len, the data and the ppl sequences (empty: comparable). A page comparing runs evaluated on
 * different text says so instead of claiming "the same held-out sequences".
 */
export function heldOutDifferences(runs: EvalRun[]): string[] {
  if (runs.length < 2) return [];
  const out: string[] = [];
  const differ = (what: string, get: (r: EvalRun) => unknown): void => {
    const vals = runs.map((r) => JSON.stringify(get(r) ?? null));
    if (new Set(vals).size > 1) out.push(`${what} (${runs.map((r, i) => `${r.name}: ${vals[i]!.length > 40 ? `${vals[i]!.slice(0, 37)}...` : vals[i]}`).join(', ')})`);
  };
  differ('evaluation seed', (r) => r.results.settings.seed);
  differ('--max-len', (r) => r.results.settings.maxLen);
  differ('data', (r) => r.results.settings.data);
  if (runs.every((r) => r.results.tasks.ppl)) differ('ppl sequences', (r) => r.results.tasks.ppl!.documents);
  return out;
}

export function summaryTableSection(runs: EvalRun[]): ReportSection {
  const lengths = uniqSorted(runs.flatMap((r) => r.results.tasks.ppl?.byLength.map((b) => b.c) ?? []));
  const columns: { header: string; cell: (r: EvalRun) => Cell }[] = [];
  const group: { header: string; span: number }[] = [];
  if (lengths.length > 0) {
    group.push({ header: 'validation perplexity at context length', span: lengths.length });
    for (const c of lengths) {
      columns.push({
        header: fmtLength(c),
        cell: (r) => {
          const b = r.results.tasks.ppl?.byLength.find((x) => x.c === c);
          return b ? { text: fmtPpl(b.ppl), beyond: b.beyondTrained } : { text: DASH };
        },
      });
    }
  }
  const allScores: { header: string; get: (r: EvalRun) => number | undefined }[] = [
    { header: 'first-sentence ROUGE-L', get: (r) => r.results.tasks['first-sentence']?.rougeL },
    { header: 'passkey', get: (r) => r.results.tasks.passkey?.accuracy },
    { header: 'needle recall', get: (r) => r.results.tasks.needle?.score },
    { header: 'RULER', get: (r) => r.results.tasks.ruler?.score },
    { header: 'QA F1', get: (r) => r.results.tasks.qa?.generation?.f1 },
    { header: 'QA ROUGE geo', get: (r) => r.results.tasks.qa?.generation?.rougeGeoMean },
    { header: 'QA choice acc', get: (r) => r.results.tasks.qa?.choice?.accuracy },
    { header: 'MC acc', get: (r) => r.results.tasks.mc?.accuracy },
    { header: 'MC acc_norm', get: (r) => r.results.tasks.mc?.accuracyNorm },
  ];
  const scores = allScores.filter((s) => runs.some((r) => s.get(r) !== undefined));
  if (scores.length > 0) group.push({ header: 'scores (%)', span: scores.length });
  for (const s of scores) columns.push({ header: s.header, cell: (r) => ({ text: fmtPct(s.get(r)) }) });
  const trained = [...new Set(runs.map((r) => r.results.model.trainedContext))];
  const differences = heldOutDifferences(runs);
  const heldOut = differences.length === 0 ? 'of the same held-out sequences' : `of each run's own held-out sequences: WARNING, the runs were evaluated on different text, so their figures are not paired (${differences.join('; ')})`;
  const note = `Perplexity = exp(mean loss over the first c tokens) ${heldOut}. Scores are means over all lengths${runs.some((r) => r.results.tasks.passkey || r.results.tasks.needle) ? ' (and depths)' : ''} in percent. ` +
    (trained.some((t) => t !== null) ? `* marks lengths beyond the run's trained context (${trained.map((t) => (t === null ? 'unknown' : String(t))).join(' / ')}).` : '');
  const html = columns.length === 0
    ? '<p class="note">No scores: these runs have no ppl, retrieval, QA or MC results.</p>'
    : `${runTable(runs, columns, 'summary', group)}\n<p class="note">${escapeHtml(note)}</p>`;
  return { heading: 'Summary', id: 'summary', html };
}

/** Tables of each retrieval metric by prompt length (the numbers behind the retrieval charts). */
export function byLengthSection(runs: EvalRun[]): ReportSection | null {
  const metrics: { title: string; rows: (r: EvalRun) => { length: number; score: number; beyondTrained: boolean }[] | undefined }[] = [
    { title: 'first-sentence retrieval (ROUGE-L F, %)', rows: (r) => r.results.tasks['first-sentence']?.byLength.map((b) => ({ ...b, score: b.rougeL })) },
    { title: 'passkey (accuracy, %)', rows: (r) => r.results.tasks.passkey?.byLength.map((b) => ({ ...b, score: b.accuracy })) },
    { title: 'needle (ROUGE-L recall, %)', rows: (r) => r.results.tasks.needle?.byLength },
    { title: 'RULER-style tasks (mean string_match_all, %)', rows: (r) => r.results.tasks.ruler?.byLength },
  ];
  const parts: string[] = [];
  for (const m of metrics) {
    const present = runs.filter((r) => m.rows(r) !== undefined);
    if (present.length === 0) continue;
    const lengths = uniqSorted(present.flatMap((r) => m.rows(r)!.map((b) => b.length)));
    parts.push(`<h3>${escapeHtml(m.title)}</h3>\n${runTable(runs, lengths.map((L) => ({
      header: fmtLength(L),
      cell: (r: EvalRun): Cell => {
        const b = m.rows(r)!.find((x) => x.length === L);
        return b ? { text: fmtPct(b.score), beyond: b.beyondTrained } : { text: DASH };
      },
    })), 'by-length', undefined, present)}`);
  }
  if (parts.length === 0) return null;
  return { heading: 'Scores by length', id: 'by-length', html: `${parts.join('\n')}\n<p class="note">${escapeHtml('* beyond the run\'s trained context.')}</p>` };
}

/**
 * The power-law fits L(c) = (alpha/c)^beta + gamma (paper §4.2, Fig. 1), on the loss of fixed final
 * tokens by context, with each fit's status: a flagged one ('flat', 'failed') shows its reason and no
 * parameters but beta and R^2 (which say why), and is never drawn.
 */
export function powerLawSection(runs: EvalRun[]): ReportSection | null {
  const withPpl = runs.filter((r) => r.results.tasks.ppl);
  if (withPpl.length === 0) return null;
  const series = new Map(withPpl.map((r) => [r, figure1Series(r.results.tasks.ppl!)] as const));
  const fitOf = (r: EvalRun) => r.results.tasks.ppl!.fit;
  const ok = (r: EvalRun): boolean => series.get(r)!.status === 'ok';
  const num = (f: (r: EvalRun) => string, always = false): (r: EvalRun) => Cell => (r) => ({ text: fitOf(r) && (always || ok(r)) ? f(r) : DASH });
  const html = runTable(runs, [
    { header: 'status', cell: (r) => ({ text: series.get(r)!.status === 'ok' ? 'ok' : `FLAGGED: ${series.get(r)!.status}`, cls: series.get(r)!.status === 'ok' ? 'text' : 'text flagged' }) },
    { header: 'α', cell: num((r) => { const f = fitOf(r)!; return Number.isFinite(f.alpha) ? f.alpha.toPrecision(4) : `e^${f.lnAlpha.toFixed(2)}`; }) },
    { header: 'β', cell: num((r) => fitOf(r)!.beta.toFixed(4), true) },
    { header: 'γ', cell: num((r) => fitOf(r)!.gamma.toFixed(4)) },
    { header: '2^-β (per doubling)', cell: num((r) => fitOf(r)!.factor.toFixed(3)) },
    { header: 'R²', cell: num((r) => fitOf(r)!.r2.toFixed(4), true) },
    { header: 'targets K', cell: (r) => ({ text: series.get(r)!.targetTokens !== null ? String(series.get(r)!.targetTokens) : DASH }) },
    { header: 'fitted contexts', cell: (r) => ({ text: r.results.tasks.ppl!.fitLengths.map(fmtLength).join(', ') || DASH, cls: 'text' }) },
    { header: 'notes', cell: (r) => ({ text: [series.get(r)!.reason, ...(fitOf(r)?.flags ?? [])].filter((x) => x).join('; ') || DASH, cls: 'text' }) },
  ], 'fits', undefined, withPpl);
  return {
    heading: 'Power-law fit of loss vs context', id: 'power-law',
    html: `${html}\n<p class="note">${escapeHtml(`L(c) = (α/c)^β + γ fitted to the loss of each sequence's last K tokens given the c tokens before them (the same tokens at every c, so the curve is the gain from context alone), as the law's mean over the K tokens' own contexts c … c+K−1, at the contexts whose input stays within the trained context (c + K ≤ trained); each doubling of the context multiplies (L − γ) by 2^-β (about 0.7 for Llama 2 Long 70B). A fit is flagged flat when the loss does not fall with c, falls by less than ${FIT_MIN_DROP} nats over the fitted range or within 2 standard errors of the paired fall, or β < ${FIT_BETA_MIN}; failed when there is no fit, it does not converge or R² < ${FIT_R2_MIN}. Flagged fits are not drawn.`)}</p>`,
  };
}

/** The copy probe's numbers: gain (first - second copy loss) ± SE by distance, one row per run. */
export function copySection(runs: EvalRun[]): ReportSection | null {
  const withCopy = runs.filter((r) => r.results.tasks.copy);
  if (withCopy.length === 0) return null;
  const ds = uniqSorted(withCopy.flatMap((r) => r.results.tasks.copy!.byDistance.map((b) => b.d)));
  const f3 = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : DASH);
  const columns: { header: string; cell: (r: EvalRun) => Cell }[] = [
    { header: 'span', cell: (r) => ({ text: String(r.results.tasks.copy!.span) }) },
    { header: 'spans', cell: (r) => ({ text: String(r.results.tasks.copy!.samples) }) },
    { header: 'first copy', cell: (r) => { const b = r.results.tasks.copy!.byDistance; return { text: f3(b.reduce((s, x) => s + x.first, 0) / b.length) }; } },
    ...ds.map((d) => ({
      header: fmtLength(d),
      cell: (r: EvalRun): Cell => {
        const b = r.results.tasks.copy!.byDistance.find((x) => x.d === d);
        return b ? { text: `${f3(b.gain)}${b.seGain !== null ? ` ± ${b.seGain.toFixed(3)}` : ''}`, beyond: b.beyondTrained } : { text: DASH };
      },
    })),
  ];
  const html = runTable(runs, columns, 'copy', [{ header: '', span: 3 }, { header: 'gain = first − second copy loss (nats/token) at distance d', span: ds.length }], withCopy);
  return {
    heading: 'Repeated-span loss by distance', id: 'copy',
    html: `${html}\n<p class="note">${escapeHtml('Each span of held-out text is followed by d − span tokens of other text and then repeated; "first copy" is the mean loss of the first copy (its first token excluded), each distance column the gain on the second copy ± one standard error over spans (paired). * the second copy ends beyond the run\'s trained context.')}</p>`,
  };
}

const CAPTIONS: Record<ChartId, string> = {
  'loss-vs-length': 'Loss of the same final tokens of each held-out sequence given the c tokens before them, by c (paper Fig. 1), ±1 standard error over sequences; dashed: the fitted power law, drawn only when its fit is not flagged (flat or failed fits are named above the chart); triangles: inputs beyond the trained context.',
  'copy-vs-distance': 'A span of held-out text shown twice, the second copy d tokens after the first: mean loss of the first copy (dashed) and of the second (solid), first token of each excluded, ±1 standard error over spans. A model that reads its context predicts the second copy far better; the gap closes where it stops looking back. Triangles: the second copy ends beyond the trained context.',
  'loss-by-position': 'Loss at each position averaged over a window of positions (paper App. C): a model that uses its context keeps falling; one that breaks past its trained context turns up.',
  'retrieval-vs-length': 'FIRST-SENTENCE-RETRIEVAL (ROUGE-L F of the repeated first sentence, §4.1, Fig. 5b), passkey accuracy and needle recall, by prompt length.',
  'needle-heatmap': 'Needle in a haystack: ROUGE-L recall of the needle\'s answer by depth of the needle in the text and context length.',
  'ruler-vs-length': 'RULER-style tasks (multi-key needle, variable tracking, common-word extraction), string_match_all by prompt length.',
  'qa-scores': 'Long-document QA (token F1, exact match, ROUGE) and multiple choice accuracy by log-likelihood.',
};

/** Strips the XML namespaces (inline SVG in HTML needs none: no URL left on the page) and prefixes ids so charts on one page cannot clash. */
export function inlineSvg(svg: string, prefix: string): string {
  return svg
    .replace(/^<\?xml[^>]*>\s*/, '')
    .replace(/\s+xmlns(:\w+)?="[^"]*"/g, '')
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .replace(/href="#([^"]+)"/g, `href="#${prefix}-$1"`);
}

/** Every chart the runs have data for, overlaid (one colour per run), as inline SVG figures. */
export async function chartsSection(runs: EvalRun[], opts: SvgOptions & { heading?: string } = {}): Promise<ReportSection | null> {
  const charts = await renderCharts(evalCharts(runs), opts);
  if (charts.length === 0) return null;
  const figures = charts.map((c) => `<figure id="chart-${c.id}">\n${inlineSvg(c.svg, c.id)}\n<figcaption>${escapeHtml(CAPTIONS[c.id as ChartId] ?? c.title)}</figcaption>\n</figure>`);
  return { heading: opts.heading ?? 'Charts', id: 'charts', html: figures.join('\n') };
}

const json = (x: unknown): string => (x === undefined || x === null ? DASH : typeof x === 'string' ? x : JSON.stringify(x));

/** Each run's folder, model, RoPE, tokenizer and evaluation settings, side by side. */
export function runDetailsSection(runs: EvalRun[]): ReportSection {
  const info = (r: EvalRun) => r.results.model.info ?? {};
  const cfg = (r: EvalRun) => (typeof info(r).config === 'object' && info(r).config !== null ? info(r).config as Record<string, unknown> : {});
  const rows: [string, (r: EvalRun) => unknown][] = [
    ['folder', (r) => r.dir],
    ['model', (r) => r.results.model.name],
    ['model path', (r) => info(r).path],
    ['engine', (r) => [info(r).kind, info(r).backend].filter((x) => x !== undefined && x !== null).join(' / ') || undefined],
    ['parameters', (r) => info(r).parameters],
    ['RoPE', (r) => info(r).rope],
    ['rope_theta', (r) => cfg(r).rope_theta],
    ['rope_scaling', (r) => cfg(r).rope_scaling],
    ['trained context (max_position_embeddings)', (r) => r.results.model.trainedContext],
    ['layers x hidden', (r) => (cfg(r).num_hidden_layers !== undefined ? `${json(cfg(r).num_hidden_layers)} x ${json(cfg(r).hidden_size)}` : undefined)],
    ['heads / KV heads', (r) => (cfg(r).num_attention_heads !== undefined ? `${json(cfg(r).num_attention_heads)} / ${json(cfg(r).num_key_value_heads ?? cfg(r).num_attention_heads)}` : undefined)],
    ['tokenizer', (r) => `${r.results.tokenizer.kind}, ${r.results.tokenizer.vocabSize} ids, sha256 ${String(r.results.tokenizer.sha256).slice(0, 12)}`],
    ['tasks', (r) => r.results.settings.tasks.join(', ')],
    ['max length', (r) => r.results.settings.maxLen],
    ['lengths', (r) => r.results.settings.lengths.join(', ')],
    ['depths (%)', (r) => r.results.settings.depths.map((d) => Math.round(d * 1000) / 10).join(', ')],
    ['samples', (r) => Object.entries(r.results.settings.samples ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['data', (r) => (r.results.settings.data ? (r.results.settings.data as Record<string, unknown>).spec ?? r.results.settings.data : undefined)],
    ['seed', (r) => r.results.settings.seed],
    ['longctx', (r) => r.results.longctx],
    ['evaluated at', (r) => r.results.createdAt],
    ['eval time (s)', (r) => r.results.timing.seconds.toFixed(1)],
  ];
  const html = `<div class="scroll"><table class="details">
<thead><tr><th scope="col">setting</th>${runs.map((r, i) => `<th scope="col"><span class="swatch" style="background:${runColor(i)}"></span>${escapeHtml(r.name)}</th>`).join('')}</tr></thead>
<tbody>
${rows.map(([name, get]) => `<tr><th scope="row">${escapeHtml(name)}</th>${runs.map((r) => `<td class="text">${escapeHtml(json(get(r)))}</td>`).join('')}</tr>`).join('\n')}
</tbody>
</table></div>`;
  return { heading: 'Runs', id: 'runs', html };
}

/** The standard sections for runs: summary table, charts, by-length tables, copy gains, power-law fits, run details. */
export async function standardSections(runs: EvalRun[], opts: SvgOptions = {}): Promise<ReportSection[]> {
  const charts = await chartsSection(runs, opts);
  return [summaryTableSection(runs), charts, byLengthSection(runs), copySection(runs), powerLawSection(runs), runDetailsSection(runs)]
    .filter((s): s is ReportSection => s !== null);
}

export interface EvalReportOptions extends SvgOptions {
  title?: string;
  subtitle?: string;
  generatedAt?: Date;
}

/** The `longctx report` page for eval runs. */
export async function buildEvalReport(runs: EvalRun[], opts: EvalReportOptions = {}): Promise<string> {
  if (runs.length === 0) throw new Error('a report needs at least one run');
  return renderReport({
    title: opts.title ?? (runs.length === 1 ? `Evaluation of ${runs[0]!.name}` : `Evaluation: ${runs.map((r) => r.name).join(' vs ')}`),
    subtitle: opts.subtitle ?? `${runs.length} run${runs.length === 1 ? '' : 's'}; each colour is one run in every chart and table`,
    runs,
    sections: await standardSections(runs, opts),
    ...(opts.generatedAt ? { generatedAt: opts.generatedAt } : {}),
  });
}
