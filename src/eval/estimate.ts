// How long an evaluation will take, said before it starts: a timed forward pass of the model over a
// short random sequence gives this machine's rate, scaled by the FLOPs per token at the prompts'
// lengths (attention grows with the context). An estimate, not a promise: the progress bar's ETA
// takes over once the evaluation runs.

import type { EvalModel } from './model.js';
import type { LlamaConfig } from '../model/config.js';
import { trainingFlopsPerToken } from '../model/estimate.js';
import { Rng } from '../util/rng.js';

/** Seconds to push `work` tokens through `model` with sequences up to `maxSeq` (the mean context taken as maxSeq / 2). */
export async function estimateEvalSeconds(model: EvalModel, cfg: LlamaConfig, work: number, maxSeq: number): Promise<number> {
  const T = Math.min(256, model.maxContext);
  const rng = new Rng(1);
  const tokens = Int32Array.from({ length: T }, () => rng.nextInt(cfg.vocab_size));
  await model.tokenLogprobs(tokens); // the first call loads the weights
  const t0 = process.hrtime.bigint();
  await model.tokenLogprobs(tokens);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const perToken = seconds / T;
  const scale = trainingFlopsPerToken(cfg, Math.max(T, maxSeq / 2)) / trainingFlopsPerToken(cfg, T);
  return work * perToken * scale;
}
