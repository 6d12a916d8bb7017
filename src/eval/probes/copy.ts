// Repeated-span loss by distance: how far back can the model look? (issue 20, item 3)
//
// A span of S held-out tokens is shown twice:
//
//   BOS  span  filler[0, d - S)  span
//        ^ first copy starts at 1  ^ second copy starts at 1 + d (d tokens after the first)
//
// A model that reads its context predicts the second copy far better than the first; one that does
// not scores both alike. For each distance d of the grid the probe reports the mean per-token loss of
// the first and of the second copy (each without its first token, which no copy can predict), the
// gain first - second, and standard errors over spans (each span's mean is one observation; the gain's
// is the paired one). d = S is the zero gap (the span repeated at once).
//
// Text: the corpus ppl reads (held-out documents of a data folder, or sources), in the model's
// tokenizer. Each span comes from its own document (seeded order, cycling when there are fewer
// documents than spans) at a seeded offset; its filler is one contiguous piece of another document
// (seeded), so the filler is natural text on another subject and no EOS/BOS sits between the copies.
// When no other document is long enough, the other documents are concatenated (seeded order, no
// separators; the span's own document, the span cut out, comes last, so a single long text works
// too) and `packedFiller` says so. The same span and the same filler (cut to d - S) serve every
// distance, so the distances are paired.
//
// Defaults: S = 64, or maxLen/8 rounded down to a power of two when that is smaller (so at least four
// distances fit); distances S, 2S, 4S, ... while d + S <= maxLen, then maxLen - S (the longest that
// fits): every sequence is at most BOS + maxLen tokens, as ppl's are. `beyondTrained` marks d + S > the
// trained context (the second copy ends beyond it).

import { Rng } from '../../util/rng.js';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import type { EvalModel } from '../model.js';
import type { TokenDoc } from '../corpus.js';
import { mapLimit, ticker, type PreparedTask } from '../task.js';

export interface CopyOptions {
  /** the longest sequence is BOS + maxLen tokens; the distances run up to maxLen - span */
  maxLen: number;
  /** tokens per span (default: defaultCopySpan(maxLen)) */
  span?: number;
  /** distances d (first-copy start to second-copy start), each in [span, maxLen - span] (default copyDistances(maxLen, span)) */
  distances?: number[];
  /** spans (default 8) */
  samples?: number;
  /** distances with d + span above it are marked (default model.trainedContext) */
  trainedContext?: number;
  seed?: number;
}

/** Where one span and its filler came from. */
export interface CopySpan {
  doc: string;
  offset: number;
  /** the filler's document ('packed' when other documents were concatenated) */
  fillerDoc: string;
  fillerOffset: number;
}

/** One sequence of the probe: tokens = BOS + span + filler[0, d - span) + span. */
export interface CopyExample {
  /** index into the spans */
  sample: number;
  d: number;
  tokens: Int32Array;
  /** index of the first copy's first token (1 with BOS, 0 without) */
  first: number;
  /** index of the second copy's first token: first + d */
  second: number;
}

export interface CopyByDistance {
  /** distance from the first copy's start to the second's (tokens) */
  d: number;
  /** filler tokens between the copies: d - span */
  gap: number;
  /** mean loss (nats/token) of the first copy, its first token excluded */
  first: number;
  /** the same for the second copy */
  second: number;
  /** first - second: what the repeat is worth */
  gain: number;
  /** standard errors over spans (null with one span) */
  seFirst: number | null;
  seSecond: number | null;
  seGain: number | null;
  /** spans */
  n: number;
  /** d + span > the trained context: the second copy ends beyond it */
  beyondTrained: boolean;
}

export interface CopyResult {
  task: 'copy';
  span: number;
  maxLen: number;
  samples: number;
  distances: number[];
  spans: CopySpan[];
  packedFiller: boolean;
  byDistance: CopyByDistance[];
  /** mean gain over the distances within the trained context (all of them when it is unknown); null when none */
  gainWithin: number | null;
  /** mean gain over the distances beyond it; null when none */
  gainBeyond: number | null;
  /** per span and distance: the two copies' mean losses */
  examples: { sample: number; d: number; first: number; second: number }[];
}

/** 64 tokens, or maxLen/8 rounded down to a power of two when smaller (at least 2). */
export function defaultCopySpan(maxLen: number): number {
  return Math.max(2, Math.min(64, 2 ** Math.floor(Math.log2(Math.max(1, maxLen / 8)))));
}

/** S, 2S, 4S, ... while d + S <= maxLen, then maxLen - S when it is not already there. */
export function copyDistances(maxLen: number, span: number): number[] {
  if (!Number.isInteger(span) || span < 2) throw new RangeError(`copy: the span must be an integer >= 2, got ${span}`);
  if (2 * span > maxLen) throw new RangeError(`copy: maxLen ${maxLen} is too short for two copies of a ${span}-token span`);
  const out: number[] = [];
  for (let d = span; d + span <= maxLen; d *= 2) out.push(d);
  if (out[out.length - 1] !== maxLen - span) out.push(maxLen - span);
  return out;
}

/**
 * The spans, their fillers and every (span, distance) sequence, from the seed. Deterministic: the
 * same documents, options and seed give the same tokens.
 */
export function copyExamples(docs: TokenDoc[], tok: Pick<Tokenizer, 'bosId' | 'addsBos'>, opts: { maxLen: number; span?: number; distances?: number[]; samples?: number; seed?: number }): { spans: CopySpan[]; examples: CopyExample[]; packedFiller: boolean; span: number; distances: number[] } {
  const { maxLen } = opts;
  const S = opts.span ?? defaultCopySpan(maxLen);
  const distances = opts.distances ? [...new Set(opts.distances)].sort((a, b) => a - b) : copyDistances(maxLen, S);
  if (distances.length === 0) throw new RangeError('copy: no distances');
  for (const d of distances) {
    if (!Number.isInteger(d) || d < S || d + S > maxLen) throw new RangeError(`copy: distance ${d} must be an integer in [span ${S}, maxLen - span ${maxLen - S}]`);
  }
  const n = opts.samples ?? 8;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`copy: samples must be a positive integer, got ${n}`);
  const F = distances[distances.length - 1]! - S; // the longest filler
  const rng = new Rng(opts.seed ?? 0);
  const spanDocs = rng.shuffle(docs.filter((d) => d.tokens.length >= S));
  if (spanDocs.length === 0) throw new Error(`copy: no document holds a ${S}-token span`);
  const bos = tok.addsBos ? [tok.bosId] : [];
  const b = bos.length;
  const spans: CopySpan[] = [];
  const fillers: Int32Array[] = [];
  let packedFiller = false;
  for (let i = 0; i < n; i++) {
    const doc = spanDocs[i % spanDocs.length]!;
    const offset = rng.nextInt(doc.tokens.length - S + 1);
    const others = docs.filter((d) => d !== doc && d.id !== doc.id);
    const long = others.filter((d) => d.tokens.length >= F);
    let filler: Int32Array, fillerDoc: string, fillerOffset: number;
    if (long.length > 0) {
      const fd = long[rng.nextInt(long.length)]!;
      fillerOffset = rng.nextInt(fd.tokens.length - F + 1);
      filler = fd.tokens.subarray(fillerOffset, fillerOffset + F);
      fillerDoc = fd.id;
    } else {
      // the other documents in a seeded order, then the span's own document with the span cut out
      const parts = [...rng.shuffle(others.map((d) => d.tokens)), doc.tokens.subarray(0, offset), doc.tokens.subarray(offset + S)];
      const total = parts.reduce((s, p) => s + p.length, 0);
      if (total < F) throw new Error(`copy: the text holds only ${total} tokens besides the span; a filler of ${F} (distance ${F + S}) needs more text or a smaller maxLen`);
      const stream = new Int32Array(total);
      let o = 0;
      for (const p of parts) { stream.set(p, o); o += p.length; }
      fillerOffset = rng.nextInt(total - F + 1);
      filler = stream.subarray(fillerOffset, fillerOffset + F);
      fillerDoc = 'packed';
      packedFiller = true;
    }
    spans.push({ doc: doc.id, offset, fillerDoc, fillerOffset });
    fillers.push(filler);
  }
  const examples: CopyExample[] = [];
  for (let i = 0; i < n; i++) {
    const s = spans[i]!;
    const doc = spanDocs[i % spanDocs.length]!;
    const span = doc.tokens.subarray(s.offset, s.offset + S);
    for (const d of distances) {
      const t = new Int32Array(b + d + S);
      t.set(bos);
      t.set(span, b);
      t.set(fillers[i]!.subarray(0, d - S), b + S);
      t.set(span, b + d);
      examples.push({ sample: i, d, tokens: t, first: b, second: b + d });
    }
  }
  return { spans, examples, packedFiller, span: S, distances };
}

const meanOf = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
/** standard error of the mean (sample standard deviation / sqrt(n)); null below two values */
export function standardError(xs: number[]): number | null {
  if (xs.length < 2) return null;
  const m = meanOf(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1) / xs.length);
}

/** Each span's gain (first - second copy loss) averaged over the distances `keep` accepts; spans with none are left out. */
export function copyGainPerSpan(c: Pick<CopyResult, 'examples'>, keep: (d: number) => boolean): number[] {
  const bySpan = new Map<number, number[]>();
  for (const e of c.examples) if (keep(e.d)) bySpan.set(e.sample, [...(bySpan.get(e.sample) ?? []), e.first - e.second]);
  return [...bySpan.values()].map(meanOf);
}

/** Per-example copy losses -> the by-distance table and the summary gains. */
export function summarizeCopy(scored: { sample: number; d: number; first: number; second: number }[], distances: number[], span: number, trainedContext?: number): Pick<CopyResult, 'byDistance' | 'gainWithin' | 'gainBeyond'> {
  const trained = trainedContext ?? Infinity;
  const byDistance = distances.map((d): CopyByDistance => {
    const xs = scored.filter((e) => e.d === d);
    const first = xs.map((e) => e.first), second = xs.map((e) => e.second), gain = xs.map((e) => e.first - e.second);
    return {
      d, gap: d - span, first: meanOf(first), second: meanOf(second), gain: meanOf(gain),
      seFirst: standardError(first), seSecond: standardError(second), seGain: standardError(gain),
      n: xs.length, beyondTrained: d + span > trained,
    };
  });
  const within = byDistance.filter((b) => !b.beyondTrained), beyond = byDistance.filter((b) => b.beyondTrained);
  return {
    byDistance,
    gainWithin: within.length ? meanOf(within.map((b) => b.gain)) : null,
    gainBeyond: beyond.length ? meanOf(beyond.map((b) => b.gain)) : null,
  };
}

export function copyTask(model: EvalModel, docs: TokenDoc[], opts: CopyOptions): PreparedTask<CopyResult> {
  const { maxLen } = opts;
  if (!Number.isInteger(maxLen) || maxLen < 4) throw new RangeError(`copy: maxLen must be an integer >= 4, got ${maxLen}`);
  const ex = copyExamples(docs, model.tokenizer, opts);
  const S = ex.span;
  return {
    name: 'copy',
    // positions run: a scoring call over n tokens runs n - 1 (the last token is only a target), as ppl counts
    work: ex.examples.reduce((n, e) => n + e.tokens.length - 1, 0),
    maxSeq: ex.examples.reduce((m, e) => Math.max(m, e.tokens.length - 1), 0),
    run: async (tick) => {
      const scored = await mapLimit(ex.examples, model.concurrency ?? 1, async (e) => {
        const t = ticker(tick, e.tokens.length - 1);
        // scores from the first copy's second token on: out[j] is position from + j
        const from = e.first + 1;
        const lp = await model.tokenLogprobs(e.tokens, from, t.progress);
        t.finish();
        const lossOf = (start: number): number => {
          let s = 0;
          for (let p = start + 1; p < start + S; p++) s -= lp[p - from]!;
          return s / (S - 1);
        };
        return { sample: e.sample, d: e.d, first: lossOf(e.first), second: lossOf(e.second) };
      });
      const trainedContext = opts.trainedContext ?? model.trainedContext;
      return {
        task: 'copy', span: S, maxLen, samples: ex.spans.length, distances: ex.distances, spans: ex.spans, packedFiller: ex.packedFiller,
        ...summarizeCopy(scored, ex.distances, S, trainedContext),
        examples: scored,
      };
    },
  };
}
