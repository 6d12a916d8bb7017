// The metrics of SCROLLS and its peers, written to give the numbers their reference scripts give:
//   - exact match and token F1 after SQuAD normalisation (SQuAD v1.1 evaluate script, which SCROLLS
//     and LongBench reuse): lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse
//     whitespace; F1 is 0 when no token is shared (so two empty strings score 0, as in v1.1);
//   - ROUGE-1/2/L as Google's `rouge-score` package computes them without stemming: lowercase,
//     every run of characters outside [a-z0-9] is a separator (so non-ASCII letters vanish),
//     n-gram overlap with clipped counts, ROUGE-L from the longest common subsequence; precision,
//     recall and F-measure 2PR/(P+R) (0 when P+R = 0);
//   - SCROLLS' ROUGE geometric mean (R-1 * R-2 * R-L)^(1/3) of the corpus-averaged F-measures;
//   - with several references, every per-example metric takes the best reference (max).
// Scores are fractions in [0, 1]; results multiply by 100 only when printing.

// Python's string.punctuation.
const PUNCT = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** SQuAD normalisation: lower, remove punctuation, remove articles, collapse whitespace. */
export function normalizeAnswer(s: string): string {
  let t = s.toLowerCase();
  t = [...t].filter((ch) => !PUNCT.has(ch)).join('');
  // Python's \b is Unicode-aware (a word character is a letter, digit or _ of any script).
  t = t.replace(/(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])/gu, ' ');
  // Python's str.split() with no argument: its whitespace (str.isspace), which is not JS's \s
  // (it has U+001C..U+001F and U+0085, and not U+FEFF)
  return t.split(PY_WHITESPACE).filter((w) => w.length > 0).join(' ');
}

function tokensOf(s: string): string[] {
  const n = normalizeAnswer(s);
  return n === '' ? [] : n.split(' ');
}

/** 1 if the normalised strings are equal, else 0. */
export function exactMatch(prediction: string, reference: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(reference) ? 1 : 0;
}

export interface PRF {
  precision: number;
  recall: number;
  f: number;
}

function prf(overlap: number, predCount: number, refCount: number): PRF {
  const precision = predCount > 0 ? overlap / predCount : 0;
  const recall = refCount > 0 ? overlap / refCount : 0;
  const f = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f };
}

function counts<T>(items: T[]): Map<T, number> {
  const m = new Map<T, number>();
  for (const x of items) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

function clippedOverlap<T>(a: Map<T, number>, b: Map<T, number>): number {
  let n = 0;
  for (const [k, c] of a) n += Math.min(c, b.get(k) ?? 0);
  return n;
}

/** SQuAD token F1 (bag of normalised tokens, clipped counts). */
export function tokenF1(prediction: string, reference: string): number {
  const p = tokensOf(prediction);
  const r = tokensOf(reference);
  const same = clippedOverlap(counts(p), counts(r));
  if (same === 0) return 0;
  return prf(same, p.length, r.length).f;
}

/** The best score of `prediction` against any of the references (0 when there are none). */
export function maxOverReferences(metric: (prediction: string, reference: string) => number, prediction: string, references: readonly string[]): number {
  let best = 0;
  for (const r of references) best = Math.max(best, metric(prediction, r));
  return best;
}

/** rouge-score's tokenizer without stemming: lowercase, split on anything outside [a-z0-9]. */
export function rougeTokens(s: string): string[] {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, ' ').split(' ').filter((w) => w.length > 0);
}

function ngrams(tokens: string[], n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const g = tokens.slice(i, i + n).join(' ');
    m.set(g, (m.get(g) ?? 0) + 1);
  }
  return m;
}

/** ROUGE-N of a prediction against one reference (rouge-score's _score_ngrams). */
export function rougeN(prediction: string, reference: string, n: number): PRF {
  const p = ngrams(rougeTokens(prediction), n);
  const r = ngrams(rougeTokens(reference), n);
  let pc = 0, rc = 0;
  for (const c of p.values()) pc += c;
  for (const c of r.values()) rc += c;
  return prf(clippedOverlap(p, r), pc, rc);
}

/** Length of the longest common subsequence of two token lists (O(|a| |b|) time, O(|b|) memory). */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  let prev = new Int32Array(b.length + 1);
  let cur = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** ROUGE-L (sentence level, rouge-score's "rougeL"): LCS / |prediction|, LCS / |reference|, F-measure. */
export function rougeL(prediction: string, reference: string): PRF {
  const p = rougeTokens(prediction);
  const r = rougeTokens(reference);
  if (p.length === 0 || r.length === 0) return { precision: 0, recall: 0, f: 0 };
  return prf(lcsLength(p, r), p.length, r.length);
}

export interface RougeScores {
  rouge1: number; // F-measures
  rouge2: number;
  rougeL: number;
}

/** ROUGE-1/2/L F-measures, each the best over the references. */
export function rouge(prediction: string, references: readonly string[]): RougeScores {
  const best = (f: (r: string) => number): number => references.reduce((m, r) => Math.max(m, f(r)), 0);
  return {
    rouge1: best((r) => rougeN(prediction, r, 1).f),
    rouge2: best((r) => rougeN(prediction, r, 2).f),
    rougeL: best((r) => rougeL(prediction, r).f),
  };
}

/** SCROLLS' summary score: the geometric mean of (corpus-averaged) R-1, R-2 and R-L. */
export function rougeGeoMean(s: RougeScores): number {
  return Math.cbrt(s.rouge1 * s.rouge2 * s.rougeL);
}

/** Corpus-level ROUGE as SCROLLS reports it: the mean of each F-measure, then their geometric mean. */
export function corpusRouge(perExample: readonly RougeScores[]): RougeScores & { geoMean: number } {
  const n = perExample.length;
  const mean = (k: keyof RougeScores): number => (n === 0 ? 0 : perExample.reduce((a, s) => a + s[k], 0) / n);
  const agg = { rouge1: mean('rouge1'), rouge2: mean('rouge2'), rougeL: mean('rougeL') };
  return { ...agg, geoMean: rougeGeoMean(agg) };
}

/** Multiple choice: the index of the highest score (the first among ties). */
export function pickChoice(scores: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
  return best;
}

/** Fraction of examples whose highest-scoring choice is the answer. */
export function choiceAccuracy(examples: readonly { scores: readonly number[]; answer: number }[]): number {
  if (examples.length === 0) return 0;
  return examples.reduce((n, e) => n + (pickChoice(e.scores) === e.answer ? 1 : 0), 0) / examples.length;
}

/**
 * RULER's string_match_all for one example: the fraction of references that occur in the
 * prediction, case-insensitively.
 */
export function stringMatchAll(prediction: string, references: readonly string[]): number {
  if (references.length === 0) return 0;
  const p = prediction.toLowerCase();
  return references.reduce((n, r) => n + (p.includes(r.toLowerCase()) ? 1 : 0), 0) / references.length;
}

/** RULER's string_match_part: 1 if any reference occurs in the prediction (case-insensitive). */
export function stringMatchPart(prediction: string, references: readonly string[]): number {
  const p = prediction.toLowerCase();
  return references.some((r) => p.includes(r.toLowerCase())) ? 1 : 0;
}

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}
