// One optimizer step: gradient accumulation over micro-batches, clipping, AdamW.

import { forwardBackward, zeroGrad, type LlamaModel } from '../model/llama.js';
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
 * Accumulates gradients over the micro-batches (each contributes 1/k of the mean), clips, and
 * updates. A NaN/Inf loss or gradient norm throws before the weights change, so the caller's last
 * good state stays intact.
 */
export function trainStep(m: LlamaModel, opt: OptimizerState, adam: AdamWConfig, lr: number, micro: MicroBatch[]): StepResult {
  if (micro.length === 0) throw new RangeError('trainStep needs at least one micro-batch');
  zeroGrad(m);
  let loss = 0;
  for (const mb of micro) loss += forwardBackward(m, mb.tokens, mb.targets, mb.B, mb.T, 1 / micro.length) / micro.length;
  if (!Number.isFinite(loss)) throw new NonFiniteLossError(`loss is ${loss} at optimizer step ${opt.step + 1}; weights left unchanged`);
  const norm = clipGradNorm(m.be, m.grads!.flat, adam.gradClip);
  if (!Number.isFinite(norm)) throw new NonFiniteLossError(`gradient norm is ${norm} at optimizer step ${opt.step + 1}; weights left unchanged`);
  adamwUpdate(m.be, m.params.flat, m.grads!.flat, opt, parameterSpecs(m.cfg), adam, lr);
  return { loss, gradNorm: norm };
}
