// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay and bias correction, the update
// PyTorch's torch.optim.AdamW makes: p *= 1 - lr*wd; p -= lr * mhat / (sqrt(vhat) + eps).

import type { Buf } from '../buf.js';
import type { AdamWStep } from '../backend.js';

/** params, m, v (n) updated in place from grads (n) */
export function adamw(params: Buf, grads: Buf, m: Buf, v: Buf, n: number, s: AdamWStep): void {
  const bc1 = 1 - Math.pow(s.beta1, s.step);
  const bc2 = 1 - Math.pow(s.beta2, s.step);
  const decay = 1 - s.lr * s.weightDecay;
  for (let i = 0; i < n; i++) {
    const g = grads[i]!;
    const mi = s.beta1 * m[i]! + (1 - s.beta1) * g;
    const vi = s.beta2 * v[i]! + (1 - s.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i]! * decay - (s.lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + s.eps);
  }
}
