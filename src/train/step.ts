// One optimizer step: gradient accumulation over micro-batches, clipping, AdamW.

import { forwardBackward, zeroGrad, type LlamaModel } from '../model/llama.js';
import { scoredTargets } from '../kernels/backend.js';
import { parameterSpecs } from '../model/params.js';
import { adamwUpdate, clipGradNorm, type AdamWConfig, type OptimizerState } from './adamw.js';

export interface MicroBatch {
  tokens: Int32Array; // (B*T)
  targets: Int32Array; // (B*T), -100 masks a position
  B: number;
  T: number;
}

export interface StepResult {
  loss: number; // mean over micro-batches
  gradNorm: number; // before clipping
}

export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';
}

/**
 * Accumulates gradients over the micro-batches, clips, and updates. The step's loss is the mean over
 * every scored target of the step: each micro-batch contributes its mean weighted by its share of
 * the scored targets (1/k each when they have equally many, as in pretraining, where nothing is
 * masked; with masked instruction data, a micro-batch holding more answer tokens weighs more, so
 * splitting a batch into micro-batches does not change the gradient). A NaN/Inf loss or gradient
 * norm throws before the weights change, so the caller's last good state stays intact.
 */
export function trainStep(m: LlamaModel, opt: OptimizerState, adam: AdamWConfig, lr: number, micro: MicroBatch[]): StepResult {
  if (micro.length === 0) throw new RangeError('trainStep needs at least one micro-batch');
  zeroGrad(m);
  let loss = 0;
  const scored = micro.map((mb) => scoredTargets(mb.targets));
  const total = scored.reduce((a, b) => a + b, 0);
  if (scored.every((n) => n === scored[0])) {
    for (const mb of micro) loss += forwardBackward(m, mb.tokens, mb.targets, mb.B, mb.T, 1 / micro.length) / micro.length;
  } else {
    micro.forEach((mb, i) => {
      const w = scored[i]! / total;
      if (w > 0) loss += forwardBackward(m, mb.tokens, mb.targets, mb.B, mb.T, w) * w;
    });
  }
  if (!Number.isFinite(loss)) throw new NonFiniteLossError(`loss is ${loss} at optimizer step ${opt.step + 1}; weights left unchanged`);
  const norm = clipGradNorm(m.be, m.grads!.flat, adam.gradClip);
  if (!Number.isFinite(norm)) throw new NonFiniteLossError(`gradient norm is ${norm} at optimizer step ${opt.step + 1}; weights left unchanged`);
  adamwUpdate(m.be, m.params.flat, m.grads!.flat, opt, parameterSpecs(m.cfg), adam, lr);
  return { loss, gradNorm: norm };
}
