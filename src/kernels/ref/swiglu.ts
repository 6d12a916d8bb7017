// SwiGLU gate of the LLaMA MLP: h = silu(gate) * up, silu(g) = g * sigmoid(g).

import type { Buf } from '../buf.js';

/** out (N) = silu(gate) * up */
export function swigluForward(out: Buf, gate: Buf, up: Buf, N: number): void {
  for (let i = 0; i < N; i++) {
    const g = gate[i]!;
    out[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

/** d silu(g)/dg = s * (1 + g * (1 - s)), s = sigmoid(g) */
export function swigluBackward(dgate: Buf, dup: Buf, dout: Buf, gate: Buf, up: Buf, N: number): void {
  for (let i = 0; i < N; i++) {
    const g = gate[i]!;
    const s = 1 / (1 + Math.exp(-g));
    const d = dout[i]!;
    dgate[i]! += d * up[i]! * s * (1 + g * (1 - s));
    dup[i]! += d * g * s;
  }
}
