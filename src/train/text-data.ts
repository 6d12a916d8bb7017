// Prepared text (longctx data prepare) as the trainer's TrainData: the tokenizer to ship with every
// checkpoint and validation windows from the held-out split. Kept out of the loop (trainer.ts), which
// takes any TrainData: instruction data brings its own (recipes/instruct.ts).

import { createBatchIterator } from '../data/pack.js';
import { longDocuments, type Dataset } from '../data/dataset.js';
import type { EvalSet, TrainData } from './trainer.js';

/** A prepared data folder as TrainData: tokenizer.json in every checkpoint, held-out windows for validation. */
export function datasetTrainData(ds: Dataset): TrainData {
  return { files: { 'tokenizer.json': ds.tokenizer.toJSON() }, evalSet: (T, n) => evalBatches(ds, T, n) };
}

/**
 * Held-out sequences of exactly `T` tokens (+1 for the last target) for validation at length T:
 * windows from the longest validation documents when there are enough of them (so the loss
 * measures long context), else the packed validation stream. Deterministic.
 */
export function evalBatches(ds: Dataset, T: number, n: number): EvalSet {
  const tokens = new Int32Array(n * T);
  const targets = new Int32Array(n * T);
  const long = longDocuments(ds.val, T + 1);
  if (long.length >= n) {
    for (let i = 0; i < n; i++) {
      const doc = long[i]!.tokens;
      for (let t = 0; t < T; t++) {
        tokens[i * T + t] = doc[t]!;
        targets[i * T + t] = doc[t + 1]!;
      }
    }
  } else {
    const it = createBatchIterator(ds, { seqLen: T, batchSize: n, split: 'val', shuffle: false, seed: 0 });
    const b = it.next();
    tokens.set(b.tokens);
    targets.set(b.targets);
  }
  return { tokens, targets, count: n };
}
