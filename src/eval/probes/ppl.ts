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
//   - fit: L(c) = (alpha/c)^beta + gamma fitted on `loss` at the lengths within the trained context.

import { Rng } from '../../util/rng.js';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import type { EvalModel } from '../model.js';
import type { TokenDoc } from '../corpus.js';
import { fitPowerLaw, PowerLawError, type PowerLawFit } from '../powerlaw.js';
import { mapLimit, ticker, type PreparedTask } from '../task.js';
import { shuffle } from '../text.js';

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
  seed?: number;
}

export interface PplSequences {
  sequences: { id: string; tokens: Int32Array }[]; // each maxLen + 1 tokens
  packed: boolean;
}

export interface PplByLength {
  c: number;
  loss: number;
  ppl: number;
  windowLoss: number;
  beyondTrained: boolean;
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
  byLength: PplByLength[];
  /** at maxLen */
  loss: number;
  ppl: number;
  fit: PowerLawFit | null;
  fitLengths: number[];
  /** why there is no fit, when there is none */
  fitNote?: string;
}

/** Evaluation sequences of maxLen + 1 tokens (BOS + document start), chosen by the seed. */
export function pplSequences(docs: TokenDoc[], tok: Pick<Tokenizer, 'bosId' | 'eosId'>, maxLen: number, n: number, seed: number): PplSequences {
  const bos = tok.bosId >= 0 ? [tok.bosId] : [];
  const need = maxLen + 1 - bos.length; // document tokens per sequence
  const long = docs.filter((d) => d.tokens.length >= need);
  const rng = new Rng(seed);
  if (long.length > 0) {
    const chosen = shuffle(long.slice(), (k) => rng.nextInt(k)).slice(0, n);
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
  const order = shuffle(docs.filter((d) => d.tokens.length > 0), (k) => rng.nextInt(k));
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
export function summarizeLosses(losses: Float64Array[], opts: { maxLen: number; minLen?: number; window?: number; trainedContext?: number }): Omit<PplResult, 'task' | 'documents' | 'packed'> {
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
  const byLength: PplByLength[] = pplLengths(maxLen, Math.min(opts.minLen ?? 16, maxLen)).map((c) => {
    const loss = meanOf(0, c);
    return { c, loss, ppl: Math.exp(loss), windowLoss: meanOf(Math.floor(c / 2), c), beyondTrained: c > trained };
  });
  const inFit = byLength.filter((b) => !b.beyondTrained);
  let fit: PowerLawFit | null = null;
  let fitNote: string | undefined;
  try {
    fit = fitPowerLaw(inFit.map((b) => b.c), inFit.map((b) => b.loss));
  } catch (e) {
    if (!(e instanceof PowerLawError)) throw e;
    fitNote = e.message;
  }
  const loss = meanOf(0, maxLen);
  return {
    maxLen, sequences: losses.length, window, positions, byLength, loss, ppl: Math.exp(loss),
    fit, fitLengths: inFit.map((b) => b.c), ...(fitNote !== undefined ? { fitNote } : {}),
  };
}

export function pplTask(model: EvalModel, docs: TokenDoc[], opts: PplOptions): PreparedTask<PplResult> {
  const { maxLen } = opts;
  if (!Number.isInteger(maxLen) || maxLen < 2) throw new RangeError(`ppl: maxLen must be an integer >= 2, got ${maxLen}`);
  const { sequences, packed } = pplSequences(docs, model.tokenizer, maxLen, opts.sequences ?? 8, opts.seed ?? 0);
  return {
    name: 'ppl',
    work: sequences.length * maxLen,
    maxSeq: maxLen,
    run: async (tick) => {
      const losses = await mapLimit(sequences, model.concurrency ?? 1, async (s) => {
        const t = ticker(tick, maxLen);
        const lp = await model.tokenLogprobs(s.tokens, 1, t.progress); // maxLen entries: positions 1 .. maxLen
        t.finish();
        return lp.map((x) => -x);
      });
      const trainedContext = opts.trainedContext ?? model.trainedContext;
      return {
        task: 'ppl', documents: sequences.map((s) => s.id), packed,
        ...summarizeLosses(losses, { maxLen, ...(opts.minLen !== undefined ? { minLen: opts.minLen } : {}), ...(opts.window !== undefined ? { window: opts.window } : {}), ...(trainedContext !== undefined ? { trainedContext } : {}) }),
      };
    },
  };
}
