// Packing documents into fixed-length training sequences, and the batch iterator.
//
// The token stream of an epoch is, for each document of epochOrder(...) in turn,
//   BOS, its tokens, EOS
// and the epochs follow each other without a break. A sequence of length T is the window
// stream[p .. p+T) with targets stream[p+1 .. p+T+1) (next token); the next sequence starts at p+T.
// So every token of every document is an input exactly once per epoch, in order, and a document
// longer than the space left in a sequence simply continues in the next one (no truncation, no
// padding, no masking: no target is ever -100 here; IGNORE_INDEX is reserved for instruction data).
//
// Tokens per optimizer step stay fixed when the sequence length changes: batchShape(tokensPerStep,
// T) gives B = tokensPerStep / T, and reshape() switches T and B between two batches while the stream
// goes on where it was (a curriculum 256 -> 2048 with batch 64 -> 8 sees the same documents in the
// same order). state() is a small JSON object; restoreBatchIterator continues exactly.

import type { Dataset, DocSet } from './dataset.js';
import { checkMix, epochOrder, type MixOptions } from './mix.js';
import { checkSynthetic, isSyntheticRow, maskRepeatTargets, maskTargets, recallRow, repeatRow, syntheticKind, syntheticShareAt, warmupRow, type SyntheticOptions } from './synthetic.js';
import { passkeyFormat, passkeyRow, type PasskeyFormat } from './passkey.js';
import { firstSentenceFormat, firstSentenceRow, type FirstSentenceFormat } from './first-sentence.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';
import { IGNORE_INDEX } from '../kernels/backend.js';

export interface Batch {
  /** (B*T) inputs */
  tokens: Int32Array;
  /** (B*T) next-token targets */
  targets: Int32Array;
  B: number;
  T: number;
  /** epoch of the first token of the batch */
  epoch: number;
}

export interface BatchOptions {
  seqLen: number;
  batchSize: number;
  seed?: number;
  mix?: MixOptions;
  /** 'train' (default) or 'val' when given a Dataset */
  split?: 'train' | 'val';
  /** shuffle documents each epoch (default true) */
  shuffle?: boolean;
  /** BOS / EOS ids; default: the dataset's tokenizer's (-1: none) */
  bosId?: number;
  eosId?: number;
  /** replace a share of rows by repeated training spans (data/synthetic.ts); default none */
  synthetic?: SyntheticOptions;
}

export interface BatchIteratorState {
  version: 1;
  split: 'train' | 'val';
  fingerprint: string;
  seed: number;
  mix: MixOptions;
  shuffle: boolean;
  bosId: number;
  eosId: number;
  seqLen: number;
  batchSize: number;
  /** position of the next sequence's first token: epoch, place in the epoch's order, offset in the framed document */
  epoch: number;
  docPos: number;
  offset: number;
  /** batches and tokens (inputs) produced so far */
  batches: number;
  tokens: number;
  /** synthetic repeat rows (absent: none); they do not advance the position above */
  synthetic?: SyntheticOptions;
}

export interface BatchIterator extends Iterable<Batch> {
  next(): Batch;
  /**
   * Change the shape from the next batch on; the stream continues where it is. Without a batch
   * size, tokens per step stay the same (B = tokensPerStep / seqLen; error if it does not divide).
   */
  reshape(seqLen: number, batchSize?: number): void;
  readonly seqLen: number;
  readonly batchSize: number;
  readonly tokensPerStep: number;
  readonly epoch: number;
  state(): BatchIteratorState;
}

/** B for a fixed number of tokens per step at sequence length T (error unless T divides it). */
export function batchShape(tokensPerStep: number, seqLen: number): { batchSize: number; seqLen: number } {
  if (!Number.isInteger(tokensPerStep) || tokensPerStep < 1) throw new RangeError(`tokens per step must be a positive integer, got ${tokensPerStep}`);
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`sequence length must be a positive integer, got ${seqLen}`);
  if (tokensPerStep % seqLen !== 0) throw new RangeError(`tokens per step ${tokensPerStep} is not a multiple of sequence length ${seqLen}`);
  return { batchSize: tokensPerStep / seqLen, seqLen };
}

function isDataset(d: Dataset | DocSet): d is Dataset {
  return (d as Dataset).train !== undefined && (d as Dataset).tokenizer !== undefined;
}

function checkShape(seqLen: number, batchSize: number): void {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`sequence length must be a positive integer, got ${seqLen}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
}

class Packer implements BatchIterator {
  private st: BatchIteratorState;
  private orders = new Map<number, Uint32Array>();

  /** the passkey and first-sentence rows' formats, when the synthetic options ask for those rows */
  private readonly passkey: PasskeyFormat | null;
  private readonly firstSentence: FirstSentenceFormat | null;

  constructor(private readonly docs: DocSet, st: BatchIteratorState, tokenizer: Tokenizer | null) {
    checkShape(st.seqLen, st.batchSize);
    checkMix(docs, st.mix);
    checkSynthetic(st.synthetic);
    for (const k of ['passkey', 'firstSentence'] as const) {
      if ((st.synthetic?.[k] ?? 0) > 0 && !tokenizer) throw new Error(`${k === 'passkey' ? 'passkey' : 'first-sentence'} rows (synthetic.${k}) need a dataset with its tokenizer, not bare documents`);
    }
    this.passkey = (st.synthetic?.passkey ?? 0) > 0 && tokenizer ? passkeyFormat(tokenizer) : null;
    this.firstSentence = (st.synthetic?.firstSentence ?? 0) > 0 && tokenizer ? firstSentenceFormat(tokenizer) : null;
    if (docs.size === 0 || docs.totalTokens === 0) throw new Error(`the ${st.split} split has no tokens`);
    this.st = structuredClone(st);
  }

  get seqLen(): number { return this.st.seqLen; }
  get batchSize(): number { return this.st.batchSize; }
  get tokensPerStep(): number { return this.st.seqLen * this.st.batchSize; }
  get epoch(): number { return this.st.epoch; }

  reshape(seqLen: number, batchSize?: number): void {
    if (batchSize === undefined) batchSize = batchShape(this.tokensPerStep, seqLen).batchSize;
    checkShape(seqLen, batchSize);
    this.st.seqLen = seqLen;
    this.st.batchSize = batchSize;
  }

  state(): BatchIteratorState {
    return structuredClone(this.st);
  }

  private order(epoch: number): Uint32Array {
    let o = this.orders.get(epoch);
    if (!o) {
      o = epochOrder(this.docs, this.st.mix, this.st.seed, epoch, this.st.shuffle);
      if (this.orders.size >= 2) this.orders.delete(Math.min(...this.orders.keys()));
      this.orders.set(epoch, o);
    }
    return o;
  }

  /** Copy n stream tokens from cursor c into out[at..], advancing c. */
  private read(c: { epoch: number; docPos: number; offset: number }, out: Int32Array, at: number, n: number): void {
    const bos = this.st.bosId, eos = this.st.eosId;
    const b = bos >= 0 ? 1 : 0, e = eos >= 0 ? 1 : 0;
    let emptyEpochs = 0;
    while (n > 0) {
      const order = this.order(c.epoch);
      if (c.docPos >= order.length) {
        if (order.length === 0 && ++emptyEpochs > 100) throw new Error('the mix selects no documents (all weights 0?)');
        c.epoch++;
        c.docPos = 0;
        c.offset = 0;
        continue;
      }
      const d = order[c.docPos]!;
      const toks = this.docs.tokens(d);
      const len = toks.length;
      const framed = b + len + e;
      const take = Math.min(framed - c.offset, n);
      let t = c.offset;
      const end = t + take;
      if (b && t === 0 && t < end) { out[at++] = bos; t++; }
      if (t < end && t - b < len) {
        const from = t - b;
        const upto = Math.min(len, end - b);
        out.set(toks.subarray(from, upto), at);
        at += upto - from;
        t = upto + b;
      }
      if (e && t < end) { out[at++] = eos; t++; }
      n -= take;
      c.offset += take;
      if (c.offset >= framed) {
        c.docPos++;
        c.offset = 0;
      }
    }
  }

  next(): Batch {
    const { seqLen: T, batchSize: B } = this.st;
    const epoch = this.st.epoch;
    const tokens = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    const row = new Int32Array(T + 1);
    const cur = { epoch: this.st.epoch, docPos: this.st.docPos, offset: this.st.offset };
    const share = syntheticShareAt(this.st.synthetic, this.st.batches);
    for (let r = 0; r < B; r++) {
      if (isSyntheticRow(share, this.st.seed, this.st.batches, r)) {
        const kind = share >= 1 ? 'warmup' : syntheticKind(this.st.synthetic!, this.st.seed, this.st.batches, r);
        // a row too short for its format (null) is a repeat row
        const scored = kind === 'passkey' ? passkeyRow(this.docs, this.passkey!, this.st.seed, this.st.batches, r, row)
          : kind === 'first-sentence' ? firstSentenceRow(this.docs, this.firstSentence!, this.st.seed, this.st.batches, r, row) : null;
        const segments = scored ? null : (kind === 'warmup' ? warmupRow : kind === 'recall' ? recallRow : repeatRow)(this.docs, this.st.seed, this.st.batches, r, row);
        tokens.set(row.subarray(0, T), r * T);
        targets.set(row.subarray(1, T + 1), r * T);
        const rowTargets = targets.subarray(r * T, (r + 1) * T);
        if (scored) maskTargets(scored, rowTargets, IGNORE_INDEX);
        else maskRepeatTargets(segments!, rowTargets, IGNORE_INDEX);
        continue;
      }
      this.read(cur, row, 0, T);
      const peek = { ...cur };
      this.read(peek, row, T, 1);
      tokens.set(row.subarray(0, T), r * T);
      targets.set(row.subarray(1, T + 1), r * T);
    }
    this.st.epoch = cur.epoch;
    this.st.docPos = cur.docPos;
    this.st.offset = cur.offset;
    this.st.batches++;
    this.st.tokens += B * T;
    return { tokens, targets, B, T, epoch };
  }

  [Symbol.iterator](): Iterator<Batch> {
    return { next: () => ({ value: this.next(), done: false }) };
  }
}

function resolve(data: Dataset | DocSet, split: 'train' | 'val' | undefined): { docs: DocSet; bos: number; eos: number; tokenizer: Tokenizer | null } {
  if (isDataset(data)) {
    const docs = split === 'val' ? data.val : data.train;
    return { docs, bos: data.tokenizer.bosId, eos: data.tokenizer.eosId, tokenizer: data.tokenizer };
  }
  return { docs: data, bos: -1, eos: -1, tokenizer: null };
}

/** A batch iterator over a dataset's train (or val) documents, packed as described above. */
export function createBatchIterator(data: Dataset | DocSet, opts: BatchOptions): BatchIterator {
  const { docs, bos, eos, tokenizer } = resolve(data, opts.split);
  return new Packer(docs, {
    version: 1,
    split: docs.split,
    fingerprint: docs.fingerprint,
    seed: opts.seed ?? 0,
    mix: opts.mix ?? {},
    shuffle: opts.shuffle ?? true,
    bosId: opts.bosId ?? bos,
    eosId: opts.eosId ?? eos,
    seqLen: opts.seqLen,
    batchSize: opts.batchSize,
    epoch: 0,
    docPos: 0,
    offset: 0,
    batches: 0,
    tokens: 0,
    ...(opts.synthetic && (opts.synthetic.share > 0 || (opts.synthetic.onlyBatches ?? 0) > 0) ? { synthetic: { ...opts.synthetic } } : {}),
  }, tokenizer);
}

/** Continue exactly where state() was taken (the data must be the same: checked by fingerprint). */
export function restoreBatchIterator(data: Dataset | DocSet, state: BatchIteratorState): BatchIterator {
  if (!state || state.version !== 1) throw new Error(`batch iterator state: unknown version ${JSON.stringify(state?.version)}`);
  const { docs, tokenizer } = resolve(data, state.split);
  if (docs.fingerprint !== state.fingerprint) throw new Error(`batch iterator state was saved for different data (fingerprint ${state.fingerprint}, this ${state.split} split has ${docs.fingerprint}); re-open the same data folder`);
  for (const k of ['epoch', 'docPos', 'offset', 'batches', 'tokens', 'seed'] as const) {
    if (!Number.isInteger(state[k]) || state[k] < 0) throw new Error(`batch iterator state: ${k} must be a non-negative integer`);
  }
  return new Packer(docs, state, tokenizer);
}
