// Loss by context length (the paper's Figure 1 and Appendix C, Figure 9a).
//
// Each evaluation sequence is BOS + the first maxLen tokens of a held-out document (documents of at
// least maxLen tokens, chosen by the seed; when there are none, documents are packed as in training,
// BOS doc EOS BOS doc ..., and `packed` says so). One pass with the KV cache gives the loss at every
// position p = 0 .. maxLen-1 (predicting token p+1 from the p+1 tokens before it). From it:
//   - positions: the per-position loss averaged over windows of `window` positions (App. C uses
//     500-position means at 32k; the default scales that: maxLen / 64 rounded to a power of two);
//   - byLength: for c = 2^k (minLen .. maxLen, and maxLen): `loss` is the mean over positions
//     0 .. c-1, which for a causal model IS the validation loss of the length-c sequences cut from
//     the same document starts (the quantity of Figure 1); `windowLoss` is the mean over positions
//     c/2 .. c-1 only (how well the model predicts tokens that have about c tokens of context);
//     `beyondTrained` marks c > the model's trained context;
//   - fixed targets (what Figure 1's law is fitted on): the last K tokens of each sequence (K =
//     `targetTokens`, default maxLen/16) are scored given the c tokens just before them, with BOS in
//     front (input BOS + c + K tokens, a pass of its own per c; the longest, c = maxLen - K, is the
//     main pass when the sequence starts with BOS). The targets are the same for every c, so the
//     curve is the gain from context alone: the prefix mean above also mixes in how easy a document's
//     first tokens are. Per byLength row: `targetContext` = min(c, maxLen - K), `targetLoss` (mean
//     over sequences of each sequence's mean over its K targets), `targetSe` (standard error over
//     sequences), `targetN`, `targetBeyondTrained` (targetContext + K > the trained context);
//   - fit: L(c) = (alpha/c)^beta + gamma fitted on `targetLoss` at the contexts within the trained
//     context, as the mean of the law over the K targets' contexts c .. c+K-1 (fit.window = K: the
//     law at x = c alone would bias beta low wherever K is not small against c); `fitOn` says which
//     loss; without target losses, summarizeLosses fits `loss` at x = c as before;
//     and `fitStatus` ('ok' | 'flat' | 'failed', powerlaw.ts's assessFit) with the reason in `fitNote`.

import { Rng } from '../../util/rng.js';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import type { EvalModel } from '../model.js';
import type { TokenDoc } from '../corpus.js';
import { assessFit, fitPowerLaw, PowerLawError, type FitStatus, type PowerLawFit } from '../powerlaw.js';
import { mapLimit, ticker, type PreparedTask } from '../task.js';

export interface PplOptions {
  maxLen: number;
  /** evaluation sequences (default 8) */
  sequences?: number;
  /** smallest c of byLength (default 16) */
  minLen?: number;
  /** positions per window of the per-position curve (default maxLen/64 as a power of two, at least 1) */
  window?: number;
  /** lengths above it are marked and left out of the fit (default model.trainedContext) */
  trainedContext?: number;
  /** fixed targets per sequence (default defaultTargetTokens(maxLen)) */
  targetTokens?: number;
  seed?: number;
}

export interface PplSequences {
  sequences: { id: string; tokens: Int32Array }[]; // each maxLen + 1 tokens
  packed: boolean;
}

export interface PplByLength {
  c: number;
  /** mean loss over positions 0 .. c-1 (the loss of length-c sequences) */
  loss: number;
  ppl: number;
  windowLoss: number;
  beyondTrained: boolean;
  /** context before the fixed targets: min(c, maxLen - targetTokens) (absent in results of older versions) */
  targetContext?: number;
  /** mean loss of each sequence's last targetTokens tokens given targetContext tokens before them (and BOS) */
  targetLoss?: number;
  /** its standard error over sequences (null with one sequence) */
  targetSe?: number | null;
  targetN?: number;
  /** targetContext + targetTokens > the trained context */
  targetBeyondTrained?: boolean;
}

/** Per-sequence losses of the fixed targets at each context (what summarizeLosses needs of them). */
export interface TargetLosses {
  /** K: targets per sequence */
  tokens: number;
  /** contexts measured, ascending */
  contexts: number[];
  /** loss[k][s]: sequence s's mean loss over its K targets given contexts[k] tokens before them */
  loss: number[][];
}

export interface PplResult {
  task: 'ppl';
  maxLen: number;
  sequences: number;
  documents: string[];
  packed: boolean;
  window: number;
  /** mean loss of the positions [start, end) over all sequences */
  positions: { start: number; end: number; loss: number }[];
  /** per sequence: the mean loss of each window of `positions` (sequences x windows), for intervals over sequences (absent in results of older versions) */
  sequenceWindows?: number[][];
  /** per sequence: its fixed targets' loss at each byLength row (sequences x rows), when measured */
  sequenceTargets?: number[][];
  byLength: PplByLength[];
  /** at maxLen */
  loss: number;
  ppl: number;
  /** K of the fixed targets (absent in results of older versions) */
  targetTokens?: number;
  /** which loss the fit is on: targetLoss (at targetContext), or loss (at c) in results of older versions */
  fitOn?: 'targetLoss' | 'loss';
  fit: PowerLawFit | null;
  /** the contexts (x values) fitted */
  fitLengths: number[];
  /** 'ok' or flagged: 'flat' / 'failed' (then never drawn as a curve); absent in results of older versions */
  fitStatus?: FitStatus;
  /** why the fit is flagged or missing */
  fitNote?: string;
}

/** Evaluation sequences of maxLen + 1 tokens (BOS + document start), chosen by the seed. */
export function pplSequences(docs: TokenDoc[], tok: Pick<Tokenizer, 'bosId' | 'addsBos' | 'eosId'>, maxLen: number, n: number, seed: number): PplSequences {
  const bos = tok.addsBos ? [tok.bosId] : [];
  const need = maxLen + 1 - bos.length; // document tokens per sequence
  const long = docs.filter((d) => d.tokens.length >= need);
  const rng = new Rng(seed);
  if (long.length > 0) {
    const chosen = rng.shuffle(long.slice()).slice(0, n);
    return {
      packed: false,
      sequences: chosen.map((d) => {
        const t = new Int32Array(maxLen + 1);
        t.set(bos);
        t.set(d.tokens.subarray(0, need), bos.length);
        return { id: d.id, tokens: t };
      }),
    };
  }
  // No document is long enough: pack BOS doc EOS ... in a seeded order, as training rows are.
  const order = rng.shuffle(docs.filter((d) => d.tokens.length > 0));
  const total = order.reduce((s, d) => s + d.tokens.length + bos.length + (tok.eosId >= 0 ? 1 : 0), 0);
  if (total < maxLen + 1) throw new Error(`the evaluation text holds only ${total} tokens; loss at length ${maxLen} needs at least ${maxLen + 1}`);
  const stream = new Int32Array(total);
  let o = 0;
  for (const d of order) {
    stream.set(bos, o); o += bos.length;
    stream.set(d.tokens, o); o += d.tokens.length;
    if (tok.eosId >= 0) stream[o++] = tok.eosId;
  }
  const sequences: { id: string; tokens: Int32Array }[] = [];
  for (let s = 0; s + maxLen + 1 <= total && sequences.length < n; s += maxLen + 1) {
    sequences.push({ id: `packed@${s}`, tokens: stream.slice(s, s + maxLen + 1) });
  }
  return { packed: true, sequences };
}

/** K: maxLen/16 (at least 1). */
export function defaultTargetTokens(maxLen: number): number {
  return Math.max(1, Math.floor(maxLen / 16));
}

/** The contexts the fixed targets are scored at: min(c, maxLen - K) for each c of byLength, without repeats. */
export function targetContexts(maxLen: number, K: number, minLen = 16): number[] {
  return [...new Set(pplLengths(maxLen, Math.min(minLen, maxLen)).map((c) => Math.min(c, maxLen - K)))].sort((a, b) => a - b);
}

/** The input that scores a sequence's last K tokens given the `context` tokens before them: BOS + those context + K tokens. */
export function targetInput(seq: Int32Array, bos: readonly number[], K: number, context: number): Int32Array {
  const n = seq.length; // maxLen + 1
  if (context + K > n - 1) throw new RangeError(`fixed targets: context ${context} + ${K} targets exceed the sequence's ${n - 1} tokens after its start`);
  const t = new Int32Array(bos.length + context + K);
  t.set(bos);
  t.set(seq.subarray(n - K - context), bos.length);
  return t;
}

export function defaultWindow(maxLen: number): number {
  return Math.max(1, 2 ** Math.round(Math.log2(Math.max(1, maxLen / 64))));
}

/** The lengths of byLength: 2^k from minLen to maxLen, and maxLen itself. */
export function pplLengths(maxLen: number, minLen = 16): number[] {
  const out: number[] = [];
  for (let c = minLen; c < maxLen; c *= 2) out.push(c);
  out.push(maxLen);
  return out;
}

/**
 * Everything but the forward passes: per-sequence losses (each maxLen long: -log p at positions
 * 0 .. maxLen-1) -> windows, by-length means, the fit.
 */
export function summarizeLosses(losses: Float64Array[], opts: { maxLen: number; minLen?: number; window?: number; trainedContext?: number; targets?: TargetLosses }): Omit<PplResult, 'task' | 'documents' | 'packed'> {
  const { maxLen } = opts;
  if (losses.length === 0) throw new Error('no evaluation sequences');
  for (const l of losses) if (l.length !== maxLen) throw new RangeError(`a loss curve has ${l.length} positions, expected ${maxLen}`);
  // mean over sequences, per position
  const perPos = new Float64Array(maxLen);
  for (const l of losses) for (let p = 0; p < maxLen; p++) perPos[p]! += l[p]! / losses.length;
  const prefix = new Float64Array(maxLen + 1);
  for (let p = 0; p < maxLen; p++) prefix[p + 1] = prefix[p]! + perPos[p]!;
  const meanOf = (a: number, b: number): number => (prefix[b]! - prefix[a]!) / (b - a);
  const window = opts.window ?? defaultWindow(maxLen);
  const positions: PplResult['positions'] = [];
  for (let s = 0; s < maxLen; s += window) {
    const e = Math.min(maxLen, s + window);
    positions.push({ start: s, end: e, loss: meanOf(s, e) });
  }
  const trained = opts.trainedContext ?? Infinity;
  const T = opts.targets;
  const target = new Map<number, { loss: number; se: number | null; n: number; perSeq: number[] }>();
  if (T) {
    if (T.loss.length !== T.contexts.length) throw new RangeError(`fixed targets: ${T.contexts.length} contexts but ${T.loss.length} rows of losses`);
    T.contexts.forEach((ctx, k) => {
      const xs = T.loss[k]!;
      target.set(ctx, { loss: mean(xs), se: standardError(xs), n: xs.length, perSeq: xs });
    });
  }
  const byLength: PplByLength[] = pplLengths(maxLen, Math.min(opts.minLen ?? 16, maxLen)).map((c) => {
    const loss = meanOf(0, c);
    const row: PplByLength = { c, loss, ppl: Math.exp(loss), windowLoss: meanOf(Math.floor(c / 2), c), beyondTrained: c > trained };
    if (T) {
      const ctx = Math.min(c, maxLen - T.tokens);
      const t = target.get(ctx);
      if (!t) throw new RangeError(`fixed targets: no losses at context ${ctx} (the row of c = ${c})`);
      Object.assign(row, { targetContext: ctx, targetLoss: t.loss, targetSe: t.se, targetN: t.n, targetBeyondTrained: ctx + T.tokens > trained });
    }
    return row;
  });
  // the points fitted: (targetContext, targetLoss) within the trained context, or (c, loss) without targets
  const points = T
    ? [...target.keys()].filter((ctx) => ctx + T.tokens <= trained).sort((a, b) => a - b).map((ctx) => ({ x: ctx, y: target.get(ctx)!.loss }))
    : byLength.filter((b) => !b.beyondTrained).map((b) => ({ x: b.c, y: b.loss }));
  let fit: PowerLawFit | null = null;
  let error: string | undefined;
  try {
    // target j of the K has targetContext + j tokens before it: the law is fitted to their mean
    fit = fitPowerLaw(points.map((p) => p.x), points.map((p) => p.y), T ? { window: T.tokens } : {});
  } catch (e) {
    if (!(e instanceof PowerLawError)) throw e;
    error = e.message;
  }
  // the paired fall from the shortest to the longest fitted context, per sequence: its standard error
  let dropSe: number | null = null;
  if (T && points.length >= 2) {
    const a = target.get(points[0]!.x)!.perSeq, b = target.get(points[points.length - 1]!.x)!.perSeq;
    dropSe = standardError(a.map((x, s) => x - b[s]!));
  }
  const assessed = assessFit(fit, points.map((p) => p.x), points.map((p) => p.y), { ...(error !== undefined ? { error } : {}), dropSe });
  const loss = meanOf(0, maxLen);
  const sequenceWindows = losses.map((l) => positions.map((w) => meanRange(l, w.start, w.end)));
  const sequenceTargets = T ? losses.map((_, s) => byLength.map((b) => target.get(b.targetContext!)!.perSeq[s]!)) : undefined;
  return {
    maxLen, sequences: losses.length, window, positions, sequenceWindows, ...(sequenceTargets ? { sequenceTargets } : {}), byLength, loss, ppl: Math.exp(loss),
    ...(T ? { targetTokens: T.tokens } : {}), fitOn: T ? 'targetLoss' : 'loss',
    fit, fitLengths: points.map((p) => p.x), fitStatus: assessed.status, ...(assessed.reason !== null ? { fitNote: assessed.reason } : {}),
  };
}

/**
 * One sequence's mean loss over some of its windows (`which`, default all), each weighted by the
 * positions it holds: a last window cut short by maxLen counts for what it holds.
 */
export function windowsMean(windowLoss: readonly number[], positions: readonly { start: number; end: number }[], which?: readonly number[]): number {
  const idx = which ?? positions.map((_, i) => i);
  let sum = 0, n = 0;
  for (const i of idx) {
    const w = positions[i]!.end - positions[i]!.start;
    sum += windowLoss[i]! * w;
    n += w;
  }
  return sum / n;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
/** standard error of the mean; null below two values */
function standardError(xs: readonly number[]): number | null {
  if (xs.length < 2) return null;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1) / xs.length);
}

function meanRange(xs: Float64Array, a: number, b: number): number {
  let s = 0;
  for (let i = a; i < b; i++) s += xs[i]!;
  return s / (b - a);
}

export function pplTask(model: EvalModel, docs: TokenDoc[], opts: PplOptions): PreparedTask<PplResult> {
  const { maxLen } = opts;
  if (!Number.isInteger(maxLen) || maxLen < 2) throw new RangeError(`ppl: maxLen must be an integer >= 2, got ${maxLen}`);
  const { sequences, packed } = pplSequences(docs, model.tokenizer, maxLen, opts.sequences ?? 8, opts.seed ?? 0);
  const K = opts.targetTokens ?? defaultTargetTokens(maxLen);
  if (!Number.isInteger(K) || K < 1 || K >= maxLen) throw new RangeError(`ppl: targetTokens must be an integer in [1, maxLen - 1], got ${K}`);
  const contexts = targetContexts(maxLen, K, opts.minLen);
  const bos = model.tokenizer.addsBos ? [model.tokenizer.bosId] : [];
  // the longest context's input is the sequence itself when it starts with BOS: the main pass scores it
  const reuses = (seq: Int32Array, ctx: number): boolean => ctx === maxLen - K && bos.length === 1 && seq[0] === bos[0];
  // work in positions run (a call over n tokens runs n - 1), as the main pass counts maxLen
  const extra = (seq: Int32Array): number => contexts.reduce((n, ctx) => n + (reuses(seq, ctx) ? 0 : bos.length + ctx + K - 1), 0);
  return {
    name: 'ppl',
    work: sequences.reduce((n, s) => n + maxLen + extra(s.tokens), 0),
    maxSeq: maxLen,
    run: async (tick) => {
      const perSeq = await mapLimit(sequences, model.concurrency ?? 1, async (s) => {
        const t = ticker(tick, maxLen);
        const lp = await model.tokenLogprobs(s.tokens, 1, t.progress); // maxLen entries: positions 1 .. maxLen
        t.finish();
        const loss = lp.map((x) => -x);
        const targets: number[] = [];
        for (const ctx of contexts) {
          if (reuses(s.tokens, ctx)) {
            targets.push(meanRange(loss, maxLen - K, maxLen));
            continue;
          }
          const input = targetInput(s.tokens, bos, K, ctx);
          const tt = ticker(tick, input.length - 1);
          const tl = await model.tokenLogprobs(input, input.length - K, tt.progress); // K entries: the targets
          tt.finish();
          targets.push(-meanRange(tl, 0, K));
        }
        return { loss, targets };
      });
      const trainedContext = opts.trainedContext ?? model.trainedContext;
      const targets: TargetLosses = { tokens: K, contexts, loss: contexts.map((_, k) => perSeq.map((x) => x.targets[k]!)) };
      return {
        task: 'ppl', documents: sequences.map((s) => s.id), packed,
        ...summarizeLosses(perSeq.map((x) => x.loss), { maxLen, targets, ...(opts.minLen !== undefined ? { minLen: opts.minLen } : {}), ...(opts.window !== undefined ? { window: opts.window } : {}), ...(trainedContext !== undefined ? { trainedContext } : {}) }),
      };
    },
  };
}
