// AdamW optimizer state and update over the flat parameter buffer, with global-norm clipping.
// The per-element math is the backend's `adamw` op (kernels/ref/adamw.ts is its reference).

import type { Backend } from '../kernels/backend.js';
import { allocBuf, type Buf, type BufCtor, type ParamSpec } from '../model/params.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number; // applied to matrices only (ParamSpec.decay), never to RMSNorm gains
  gradClip: number; // max global L2 norm; 0 disables clipping
}

/** Llama 2's optimizer settings (Touvron et al. 2023, §2.2): betas 0.9/0.95, eps 1e-5, wd 0.1, clip 1.0. */
export function llamaAdamW(): AdamWConfig {
  return { beta1: 0.9, beta2: 0.95, eps: 1e-5, weightDecay: 0.1, gradClip: 1.0 };
}

export interface OptimizerState {
  m: Buf; // (P) first moment
  v: Buf; // (P) second moment
  step: number; // updates taken so far
}

/** Zeroed moments; float32 ones placed for `be`'s kernels when given (Backend.allocFloat32). */
export function createOptimizerState(P: number, ctor: BufCtor = Float32Array, be?: Pick<Backend, 'allocFloat32'>): OptimizerState {
  return { m: allocBuf(ctor, P, be), v: allocBuf(ctor, P, be), step: 0 };
}

/** Global L2 norm of the gradient (float64 sum). */
export function gradNorm(be: Backend, grads: Buf): number {
  return Math.sqrt(be.sumSquares(grads, grads.length));
}

/**
 * Scales grads so their global norm is at most maxNorm (torch.nn.utils.clip_grad_norm_:
 * factor maxNorm / (norm + 1e-6), applied only when it is below 1). Returns the norm before clipping.
 */
export function clipGradNorm(be: Backend, grads: Buf, maxNorm: number): number {
  const norm = gradNorm(be, grads);
  if (maxNorm > 0) {
    const factor = maxNorm / (norm + 1e-6);
    if (factor < 1) be.scale(grads, factor, grads.length);
  }
  return norm;
}

/** One AdamW update of every tensor at learning rate lr; decay only where spec.decay. */
export function adamwUpdate(be: Backend, params: Buf, grads: Buf, state: OptimizerState, specs: ParamSpec[], cfg: AdamWConfig, lr: number): void {
  state.step += 1;
  for (const s of specs) {
    const end = s.offset + s.size;
    be.adamw(
      params.subarray(s.offset, end), grads.subarray(s.offset, end),
      state.m.subarray(s.offset, end), state.v.subarray(s.offset, end), s.size,
      { lr, beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps, weightDecay: s.decay ? cfg.weightDecay : 0, step: state.step },
    );
  }
}
