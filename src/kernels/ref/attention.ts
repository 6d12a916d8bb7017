// Causal grouped-query attention, reference tier. Same contract as the flash kernel: forward
// saves only the output and each query's log-sum-exp; backward recomputes probabilities from them.
// No T x T matrix is stored: one row of scores (Tk) at a time.

import type { Buf } from '../buf.js';

const same = (x: number): number => x;

/**
 * out (B, Tq, NH, HS), lse (B, NH, Tq); q (B, Tq, NH, HS), k/v (B, Tk, NKV, HS).
 * Query t (at absolute position t + Tk - Tq) attends to keys 0 .. t + Tk - Tq.
 * `round` is applied to the probabilities where they enter the product with V (bf16: the caller
 * rounds q, k and v too).
 */
export function attentionForward(out: Buf, lse: Buf, q: Buf, k: Buf, v: Buf,
  B: number, Tq: number, Tk: number, NH: number, NKV: number, HS: number, round: (x: number) => number = same): void {
  const scale = 1 / Math.sqrt(HS);
  const group = NH / NKV; // query heads sharing one key/value head
  const offset = Tk - Tq;
  const scores = new Float64Array(Tk); // (Tk) one query's scores
  const acc = new Float64Array(HS); // (HS)
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const kh = Math.floor(h / group);
      for (let t = 0; t < Tq; t++) {
        const qo = ((b * Tq + t) * NH + h) * HS;
        const last = t + offset; // inclusive
        let max = -Infinity;
        for (let j = 0; j <= last; j++) {
          const ko = ((b * Tk + j) * NKV + kh) * HS;
          let dot = 0;
          for (let d = 0; d < HS; d++) dot += q[qo + d]! * k[ko + d]!;
          const s = dot * scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = 0; j <= last; j++) {
          const e = Math.exp(scores[j]! - max);
          scores[j] = e;
          sum += e;
        }
        acc.fill(0);
        for (let j = 0; j <= last; j++) {
          const p = round(scores[j]! / sum);
          const vo = ((b * Tk + j) * NKV + kh) * HS;
          for (let d = 0; d < HS; d++) acc[d]! += p * v[vo + d]!;
        }
        for (let d = 0; d < HS; d++) out[qo + d] = acc[d]!;
        lse[(b * NH + h) * Tq + t] = max + Math.log(sum);
      }
    }
  }
}

/**
 * With p_j = exp(s_j - lse), s_j = scale * q.k_j, o = sum_j p_j v_j and D = dout.o:
 *   dv_j += p_j dout;  ds_j = p_j (dout.v_j - D);  dq += scale ds_j k_j;  dk_j += scale ds_j q
 * `round` is applied to p_j and scale ds_j where they enter products (bf16: the caller rounds q, k,
 * v and dout too).
 */
export function attentionBackward(dq: Buf, dk: Buf, dv: Buf, dout: Buf, out: Buf, lse: Buf, q: Buf, k: Buf, v: Buf,
  B: number, T: number, NH: number, NKV: number, HS: number, round: (x: number) => number = same): void {
  const scale = 1 / Math.sqrt(HS);
  const group = NH / NKV;
  const dqAcc = new Float64Array(HS); // (HS)
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const kh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qo = ((b * T + t) * NH + h) * HS;
        const l = lse[(b * NH + h) * T + t]!;
        let D = 0;
        for (let d = 0; d < HS; d++) D += dout[qo + d]! * out[qo + d]!;
        dqAcc.fill(0);
        for (let j = 0; j <= t; j++) {
          const ko = ((b * T + j) * NKV + kh) * HS;
          let dot = 0;
          let dpv = 0;
          for (let d = 0; d < HS; d++) {
            dot += q[qo + d]! * k[ko + d]!;
            dpv += dout[qo + d]! * v[ko + d]!;
          }
          const p = Math.exp(dot * scale - l);
          const ds = round(p * (dpv - D) * scale), pr = round(p);
          for (let d = 0; d < HS; d++) {
            dv[ko + d]! += pr * dout[qo + d]!;
            dqAcc[d]! += ds * k[ko + d]!;
            dk[ko + d]! += ds * q[qo + d]!;
          }
        }
        for (let d = 0; d < HS; d++) dq[qo + d]! += dqAcc[d]!;
      }
    }
  }
}
