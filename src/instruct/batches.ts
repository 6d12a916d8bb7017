// Batches of instruction-tuning sequences for the training loop (train/trainer.ts's TrainBatches):
// every epoch visits every sequence once in a seeded shuffle, batches run on across epochs, and
// state() is a few numbers, so a resumed run continues with exactly the batches it would have had.

import { deriveSeed } from '../util/rng.js';
import { Rng } from '../util/rng.js';
import type { TrainBatches } from '../train/trainer.js';
import type { Sequence } from './build.js';

export interface SequenceIteratorState {
  version: 1;
  kind: 'instruct';
  /** the built data's fingerprint: restoring onto other data is refused */
  fingerprint: string;
  seed: number;
  seqLen: number;
  batchSize: number;
  epoch: number;
  /** next place in the epoch's order */
  pos: number;
  batches: number;
}

export class SequenceIterator implements TrainBatches {
  private st: SequenceIteratorState;
  private order: Uint32Array | null = null;
  private orderEpoch = -1;

  constructor(private readonly seqs: Sequence[], st: SequenceIteratorState) {
    if (seqs.length === 0) throw new Error('no training sequences');
    for (const s of seqs) if (s.tokens.length !== st.seqLen) throw new Error(`a sequence has ${s.tokens.length} tokens, the iterator ${st.seqLen}`);
    this.st = { ...st };
  }

  get seqLen(): number { return this.st.seqLen; }
  get batchSize(): number { return this.st.batchSize; }

  /** Instruction sequences are built at one length: only the batch size may change. */
  reshape(seqLen: number, batchSize?: number): void {
    if (seqLen !== this.st.seqLen) throw new Error(`instruction sequences are built at length ${this.st.seqLen}; they cannot be reshaped to ${seqLen}`);
    if (batchSize !== undefined) {
      if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
      this.st.batchSize = batchSize;
    }
  }

  state(): SequenceIteratorState {
    return { ...this.st };
  }

  private epochOrder(epoch: number): Uint32Array {
    if (this.orderEpoch !== epoch || !this.order) {
      const o = Uint32Array.from(this.seqs, (_, i) => i);
      new Rng(deriveSeed(this.st.seed, 'instruct-epoch', epoch)).shuffle(o);
      this.order = o;
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  next(): { tokens: Int32Array; targets: Int32Array; B: number; T: number } {
    const { seqLen: T, batchSize: B } = this.st;
    const tokens = new Int32Array(B * T); // (B, T)
    const targets = new Int32Array(B * T); // (B, T)
    for (let b = 0; b < B; b++) {
      if (this.st.pos >= this.seqs.length) {
        this.st.epoch++;
        this.st.pos = 0;
      }
      const s = this.seqs[this.epochOrder(this.st.epoch)[this.st.pos++]!]!;
      tokens.set(s.tokens, b * T);
      targets.set(s.targets, b * T);
    }
    this.st.batches++;
    return { tokens, targets, B, T };
  }
}

export function createSequenceIterator(seqs: Sequence[], o: { seqLen: number; batchSize: number; seed: number; fingerprint: string }): SequenceIterator {
  return new SequenceIterator(seqs, { version: 1, kind: 'instruct', fingerprint: o.fingerprint, seed: o.seed, seqLen: o.seqLen, batchSize: o.batchSize, epoch: 0, pos: 0, batches: 0 });
}

/** Continue from state() over the same built data (checked by fingerprint). */
export function restoreSequenceIterator(seqs: Sequence[], state: SequenceIteratorState, fingerprint: string): SequenceIterator {
  if (!state || state.version !== 1 || state.kind !== 'instruct') throw new Error('the checkpoint\'s data position is not an instruction-tuning one');
  if (state.fingerprint !== fingerprint) throw new Error('the training data builds differently from when the run started (fingerprint differs); resume with the same --pairs / --chat files and settings');
  for (const k of ['epoch', 'pos', 'batches', 'seed'] as const) {
    if (!Number.isInteger(state[k]) || state[k] < 0) throw new Error(`the checkpoint's data position: ${k} must be a non-negative integer`);
  }
  return new SequenceIterator(seqs, state);
}
