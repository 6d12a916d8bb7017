// The LLaMA model, llm.c style: parameters in one flat buffer, activations saved by the forward
// pass in named buffers, and a backward that walks the forward in reverse, line for line. There
// is no autograd: every op's gradient lives next to its forward in kernels/.
//
// Dimensions: B batch, T sequence, C hidden, NH query heads, NKV key/value heads, HS head size,
// F ffn size, V vocab, L layers; N = B*T rows.

import type { Backend } from '../kernels/backend.js';
import { scoredTargets } from '../kernels/backend.js';
import type { LlamaConfig } from './config.js';
import { ropeParamsOf } from './config.js';
import { allocBuf, paramViews, parameterSpecs, type Buf, type BufCtor, type ParamViews } from './params.js';
import { ropeTables, ropeTables64 } from './rope.js';
import { Rng } from '../util/rng.js';

interface LayerActs<A extends Buf> {
  xin: A; // (N, C) residual stream entering the layer
  ln1: A; // (N, C)
  rstd1: A; // (N)
  q: A; // (N, NH*HS) after RoPE
  k: A; // (N, NKV*HS) after RoPE
  v: A; // (N, NKV*HS)
  att: A; // (N, NH*HS) attention output before o_proj
  lse: A; // (B, NH, T)
  res: A; // (N, C) residual stream after attention
  ln2: A; // (N, C)
  rstd2: A; // (N)
  gate: A; // (N, F)
  up: A; // (N, F)
  h: A; // (N, F) silu(gate) * up
}

interface Activations<A extends Buf> {
  B: number;
  T: number;
  layers: LayerActs<A>[];
  xout: A; // (N, C) residual stream after the last layer
  lnf: A; // (N, C)
  rstdf: A; // (N)
  losses: A; // (N)
  proj: A; // (N, C) scratch: o_proj / down_proj output before the residual add
  tokens: Int32Array; // (N) saved for the embedding backward
  // Gradient scratch, reused layer after layer.
  dresid: A; // (N, C) gradient of the residual stream, flows down through all layers
  dln: A; // (N, C)
  dq: A; // (N, NH*HS)
  dk: A; // (N, NKV*HS)
  dv: A; // (N, NKV*HS)
  datt: A; // (N, NH*HS)
  dgate: A; // (N, F)
  dup: A; // (N, F)
  dh: A; // (N, F)
}

interface RopeCache<A extends Buf> {
  T: number;
  qCos: A; // (T, HS/2)
  qSin: A;
  kCos: A;
  kSin: A;
}

export interface LlamaModel<A extends Buf = Buf> {
  cfg: LlamaConfig;
  be: Backend;
  ctor: BufCtor;
  params: ParamViews<A>;
  grads: ParamViews<A> | null; // allocated by the first backward
  acts: Activations<A> | null; // sized for the last (B, T)
  rope: RopeCache<A> | null;
}

/** Sizes (in floats) of every activation buffer a training step at (B, T) allocates. */
export function activationSizes(cfg: LlamaConfig, B: number, T: number): { perLayer: Record<keyof LayerActs<Buf>, number>; shared: Record<string, number> } {
  const N = B * T;
  const { hidden_size: C, intermediate_size: F, head_dim: HS } = cfg;
  const QD = cfg.num_attention_heads * HS;
  const KD = cfg.num_key_value_heads * HS;
  return {
    perLayer: {
      xin: N * C, ln1: N * C, rstd1: N, q: N * QD, k: N * KD, v: N * KD, att: N * QD,
      lse: B * cfg.num_attention_heads * T, res: N * C, ln2: N * C, rstd2: N, gate: N * F, up: N * F, h: N * F,
    },
    shared: {
      xout: N * C, lnf: N * C, rstdf: N, losses: N, proj: N * C,
      dresid: N * C, dln: N * C, dq: N * QD, dk: N * KD, dv: N * KD, datt: N * QD, dgate: N * F, dup: N * F, dh: N * F,
    },
  };
}

/** Floats of activation memory for a training step at (B, T): the figure `longctx info` reports. */
export function activationFloats(cfg: LlamaConfig, B: number, T: number): number {
  const s = activationSizes(cfg, B, T);
  const perLayer = Object.values(s.perLayer).reduce((a, b) => a + b, 0);
  return cfg.num_hidden_layers * perLayer + Object.values(s.shared).reduce((a, b) => a + b, 0);
}

function allocActivations<A extends Buf>(m: LlamaModel<A>, B: number, T: number): Activations<A> {
  const sizes = activationSizes(m.cfg, B, T);
  const alloc = (n: number): A => allocBuf(m.ctor, n, m.be) as A;
  const layers: LayerActs<A>[] = [];
  for (let l = 0; l < m.cfg.num_hidden_layers; l++) {
    const p = sizes.perLayer;
    layers.push({
      xin: alloc(p.xin), ln1: alloc(p.ln1), rstd1: alloc(p.rstd1), q: alloc(p.q), k: alloc(p.k), v: alloc(p.v),
      att: alloc(p.att), lse: alloc(p.lse), res: alloc(p.res), ln2: alloc(p.ln2), rstd2: alloc(p.rstd2),
      gate: alloc(p.gate), up: alloc(p.up), h: alloc(p.h),
    });
  }
  const s = sizes.shared;
  return {
    B, T, layers,
    xout: alloc(s.xout!), lnf: alloc(s.lnf!), rstdf: alloc(s.rstdf!), losses: alloc(s.losses!), proj: alloc(s.proj!),
    tokens: new Int32Array(B * T),
    dresid: alloc(s.dresid!), dln: alloc(s.dln!), dq: alloc(s.dq!), dk: alloc(s.dk!), dv: alloc(s.dv!),
    datt: alloc(s.datt!), dgate: alloc(s.dgate!), dup: alloc(s.dup!), dh: alloc(s.dh!),
  };
}

function activationsFor<A extends Buf>(m: LlamaModel<A>, B: number, T: number): Activations<A> {
  if (!m.acts || m.acts.B !== B || m.acts.T !== T) m.acts = allocActivations(m, B, T);
  return m.acts;
}

/** RoPE tables for positions 0..T-1 (training and full-sequence evaluation). */
function ropeFor<A extends Buf>(m: LlamaModel<A>, T: number): RopeCache<A> {
  if (!m.rope || m.rope.T !== T) {
    const make = m.ctor === Float64Array ? ropeTables64 : ropeTables;
    const t = make(ropeParamsOf(m.cfg), 0, T);
    m.rope = { T, qCos: t.qCos as A, qSin: t.qSin as A, kCos: t.kCos as A, kSin: t.kSin as A };
  }
  return m.rope;
}

export interface CreateModelOptions {
  /** Float64Array for finite-difference checks; Float32Array (default) otherwise. */
  ctor?: BufCtor;
  /** Existing weights (P) in parameterSpecs order; otherwise zeros until initWeights. */
  weights?: Buf;
}

export function createModel(cfg: LlamaConfig, be: Backend, opts: CreateModelOptions = {}): LlamaModel {
  const ctor = opts.ctor ?? Float32Array;
  const P = parameterSpecs(cfg).reduce((n, s) => n + s.size, 0);
  const flat = allocBuf(ctor, P, be);
  if (opts.weights) {
    if (opts.weights.length !== P) throw new Error(`weights have ${opts.weights.length} floats, config needs ${P}`);
    flat.set(opts.weights);
  }
  return { cfg, be, ctor, params: paramViews(cfg, flat), grads: null, acts: null, rope: null };
}

/** Hugging Face LlamaPreTrainedModel init: N(0, initializer_range) for matrices, ones for RMSNorm gains. */
export function initWeights(m: LlamaModel, seed: number): void {
  const rng = new Rng(seed);
  const std = m.cfg.initializer_range;
  for (const s of parameterSpecs(m.cfg)) {
    const w = m.params.flat.subarray(s.offset, s.offset + s.size);
    if (s.shape.length === 1) w.fill(1);
    else for (let i = 0; i < s.size; i++) w[i] = std * rng.nextNormal();
  }
}

export function zeroGrad(m: LlamaModel): void {
  if (m.grads) m.grads.flat.fill(0);
}

function checkTokens(tokens: Int32Array, N: number, V: number, what: string): void {
  if (tokens.length !== N) throw new RangeError(`${what} has ${tokens.length} entries, expected B*T = ${N}`);
  for (let i = 0; i < N; i++) {
    const t = tokens[i]!;
    if (!(t >= 0 && t < V)) throw new RangeError(`${what}[${i}] = ${t} is outside the vocabulary [0, ${V})`);
  }
}

/** Runs the layers and the final norm over tokens (B*T); leaves everything the backward needs in acts. */
function forwardBody<A extends Buf>(m: LlamaModel<A>, tokens: Int32Array, B: number, T: number): Activations<A> {
  const { cfg, be, params: p } = m;
  const N = B * T;
  const C = cfg.hidden_size, F = cfg.intermediate_size, HS = cfg.head_dim;
  const NH = cfg.num_attention_heads, NKV = cfg.num_key_value_heads;
  // T above max_position_embeddings is allowed: evaluation beyond the trained length is a
  // measurement we want. Callers that must refuse it check before calling.
  checkTokens(tokens, N, cfg.vocab_size, 'tokens');
  const a = activationsFor(m, B, T);
  const rope = ropeFor(m, T);
  a.tokens.set(tokens);

  be.embeddingForward(a.layers[0]!.xin, tokens, p.embed, N, C);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const w = p.layers[l]!;
    const L = a.layers[l]!;
    const xnext = l + 1 < cfg.num_hidden_layers ? a.layers[l + 1]!.xin : a.xout;
    // attention block
    be.rmsnormForward(L.ln1, L.rstd1, L.xin, w.inputNorm, N, C, cfg.rms_norm_eps);
    be.matmulForward(L.q, L.ln1, w.wq, N, C, NH * HS);
    be.matmulForward(L.k, L.ln1, w.wk, N, C, NKV * HS);
    be.matmulForward(L.v, L.ln1, w.wv, N, C, NKV * HS);
    be.ropeForward(L.q, rope.qCos, rope.qSin, B, T, NH, HS);
    be.ropeForward(L.k, rope.kCos, rope.kSin, B, T, NKV, HS);
    be.attentionForward(L.att, L.lse, L.q, L.k, L.v, B, T, T, NH, NKV, HS);
    be.matmulForward(a.proj, L.att, w.wo, N, NH * HS, C);
    be.add(L.res, L.xin, a.proj, N * C);
    // MLP block
    be.rmsnormForward(L.ln2, L.rstd2, L.res, w.postNorm, N, C, cfg.rms_norm_eps);
    be.matmulForward(L.gate, L.ln2, w.wGate, N, C, F);
    be.matmulForward(L.up, L.ln2, w.wUp, N, C, F);
    be.swigluForward(L.h, L.gate, L.up, N * F);
    be.matmulForward(a.proj, L.h, w.wDown, N, F, C);
    be.add(xnext, L.res, a.proj, N * C);
  }
  be.rmsnormForward(a.lnf, a.rstdf, a.xout, p.finalNorm, N, C, cfg.rms_norm_eps);
  return a;
}

function countTargets(targets: Int32Array, N: number): number {
  if (targets.length !== N) throw new RangeError(`targets has ${targets.length} entries, expected B*T = ${N}`);
  return scoredTargets(targets);
}

function meanLoss(losses: Buf, N: number, valid: number): number {
  let sum = 0;
  for (let i = 0; i < N; i++) sum += losses[i]!;
  return valid > 0 ? sum / valid : 0;
}

/** Mean cross-entropy over non-ignored targets. tokens/targets (B*T); targets[i] = -100 masks row i. */
export function forward(m: LlamaModel, tokens: Int32Array, targets: Int32Array, B: number, T: number): number {
  const N = B * T;
  const valid = countTargets(targets, N);
  const a = forwardBody(m, tokens, B, T);
  m.be.crossEntropyForward(a.losses, a.lnf, m.params.lmHead, targets, N, m.cfg.hidden_size, m.cfg.vocab_size);
  return meanLoss(a.losses, N, valid);
}

/** Full-sequence logits (B*T, V): evaluation of short inputs; long ones go through forwardCached. */
export function logits(m: LlamaModel, tokens: Int32Array, B: number, T: number): Buf {
  const a = forwardBody(m, tokens, B, T);
  const out = allocBuf(m.ctor, B * T * m.cfg.vocab_size, m.be);
  m.be.matmulForward(out, a.lnf, m.params.lmHead, B * T, m.cfg.hidden_size, m.cfg.vocab_size);
  return out;
}

/**
 * One training micro-step: forward, loss, backward. Gradients ACCUMULATE into m.grads (call
 * zeroGrad before the first micro-step of an optimizer step); they are the gradient of
 * lossScale * mean loss, so gradient accumulation over k micro-steps passes lossScale = 1/k.
 * Returns the mean loss (unscaled).
 */
export function forwardBackward(m: LlamaModel, tokens: Int32Array, targets: Int32Array, B: number, T: number, lossScale = 1): number {
  const { cfg, be } = m;
  const N = B * T;
  const C = cfg.hidden_size, F = cfg.intermediate_size, HS = cfg.head_dim;
  const NH = cfg.num_attention_heads, NKV = cfg.num_key_value_heads;
  const valid = countTargets(targets, N);
  if (!m.grads) m.grads = paramViews(cfg, allocBuf(m.ctor, m.params.flat.length, m.be));
  const p = m.params;
  const g = m.grads;

  const a = forwardBody(m, tokens, B, T);
  // The LM head's forward and backward are fused: the gradient of the mean loss comes out of the
  // same pass over the vocabulary that computes it.
  // An activation gradient with one contribution is overwritten (accumulate = false), with several
  // the first overwrites and the rest add: no buffer is zeroed first (backend.ts).
  const dloss = valid > 0 ? lossScale / valid : 0;
  be.crossEntropyForwardBackward(a.losses, a.dln, g.lmHead, a.lnf, p.lmHead, targets, dloss, N, C, cfg.vocab_size, false);
  const loss = meanLoss(a.losses, N, valid);

  // backward: the forward in reverse
  be.rmsnormBackward(a.dresid, g.finalNorm, a.dln, a.xout, p.finalNorm, a.rstdf, N, C, false);
  for (let l = cfg.num_hidden_layers - 1; l >= 0; l--) {
    const w = p.layers[l]!;
    const gw = g.layers[l]!;
    const L = a.layers[l]!;
    // MLP block: xnext = res + down(swiglu(gate(ln2), up(ln2))); dresid is d xnext = d res (identity path)
    be.matmulBackward(a.dh, gw.wDown, a.dresid, L.h, w.wDown, N, F, C, false);
    be.swigluBackward(a.dgate, a.dup, a.dh, L.gate, L.up, N * F, false);
    be.matmulBackward(a.dln, gw.wUp, a.dup, L.ln2, w.wUp, N, C, F, false);
    be.matmulBackward(a.dln, gw.wGate, a.dgate, L.ln2, w.wGate, N, C, F);
    be.rmsnormBackward(a.dresid, gw.postNorm, a.dln, L.res, w.postNorm, L.rstd2, N, C);
    // attention block: res = xin + o_proj(attention(rope(q), rope(k), v)); dresid is now d res = d xin's identity path
    be.matmulBackward(a.datt, gw.wo, a.dresid, L.att, w.wo, N, NH * HS, C, false);
    be.attentionBackward(a.dq, a.dk, a.dv, a.datt, L.att, L.lse, L.q, L.k, L.v, B, T, NH, NKV, HS, false);
    const rope = m.rope!;
    be.ropeBackward(a.dk, rope.kCos, rope.kSin, B, T, NKV, HS);
    be.ropeBackward(a.dq, rope.qCos, rope.qSin, B, T, NH, HS);
    be.matmulBackward(a.dln, gw.wv, a.dv, L.ln1, w.wv, N, C, NKV * HS, false);
    be.matmulBackward(a.dln, gw.wk, a.dk, L.ln1, w.wk, N, C, NKV * HS);
    be.matmulBackward(a.dln, gw.wq, a.dq, L.ln1, w.wq, N, C, NH * HS);
    be.rmsnormBackward(a.dresid, gw.inputNorm, a.dln, L.xin, w.inputNorm, L.rstd1, N, C);
  }
  be.embeddingBackward(g.embed, a.dresid, a.tokens, N, C);
  return loss;
}

// ---------------------------------------------------------------------------------------------
// Inference with a KV cache (batch 1): prefill in chunks, then one token at a time.

export interface KVCache<A extends Buf = Buf> {
  maxT: number;
  length: number; // positions filled
  k: A[]; // L x (maxT, NKV, HS), after RoPE
  v: A[]; // L x (maxT, NKV, HS)
}

export function createKVCache(m: LlamaModel, maxT: number): KVCache {
  // a NaN here would size the buffers 0 and let the kernels write past them
  if (!Number.isSafeInteger(maxT) || maxT < 1) throw new RangeError(`KV cache length must be a positive integer, got ${maxT}`);
  const size = maxT * m.cfg.num_key_value_heads * m.cfg.head_dim;
  const k: Buf[] = [];
  const v: Buf[] = [];
  for (let l = 0; l < m.cfg.num_hidden_layers; l++) {
    k.push(allocBuf(m.ctor, size, m.be));
    v.push(allocBuf(m.ctor, size, m.be));
  }
  return { maxT, length: 0, k, v };
}

/**
 * Appends tokens (Tq) to the cache and returns logits (Tq, V), or only the last row (1, V) when
 * lastOnly. Positions continue from cache.length. RoPE tables are built for the total length so
 * far, which is what dynamic NTK scaling depends on (as in Hugging Face).
 */
export function forwardCached(m: LlamaModel, cache: KVCache, tokens: Int32Array, lastOnly = false): Buf {
  const { cfg, be, params: p } = m;
  const Tq = tokens.length;
  const pos0 = cache.length;
  const Tk = pos0 + Tq;
  if (Tq === 0) throw new RangeError('forwardCached needs at least one token');
  if (Tk > cache.maxT) throw new RangeError(`KV cache holds ${cache.maxT} positions; ${pos0} used + ${Tq} new exceeds it`);
  checkTokens(tokens, Tq, cfg.vocab_size, 'tokens');
  const C = cfg.hidden_size, F = cfg.intermediate_size, HS = cfg.head_dim;
  const NH = cfg.num_attention_heads, NKV = cfg.num_key_value_heads;
  const alloc = (n: number): Buf => allocBuf(m.ctor, n, m.be);
  const make = m.ctor === Float64Array ? ropeTables64 : ropeTables;
  const rope = make(ropeParamsOf(cfg), pos0, Tq, Tk);

  const x = alloc(Tq * C); // (Tq, C) residual stream
  const ln = alloc(Tq * C); // (Tq, C)
  const rstd = alloc(Tq); // (Tq)
  const q = alloc(Tq * NH * HS); // (Tq, NH*HS)
  const att = alloc(Tq * NH * HS); // (Tq, NH*HS)
  const lse = alloc(NH * Tq); // (NH, Tq)
  const proj = alloc(Tq * C); // (Tq, C)
  const gate = alloc(Tq * F); // (Tq, F)
  const up = alloc(Tq * F); // (Tq, F)
  const h = alloc(Tq * F); // (Tq, F)
  const KD = NKV * HS;
  be.embeddingForward(x, tokens, p.embed, Tq, C);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const w = p.layers[l]!;
    const kNew = cache.k[l]!.subarray(pos0 * KD, Tk * KD); // (Tq, NKV*HS) written in place into the cache
    const vNew = cache.v[l]!.subarray(pos0 * KD, Tk * KD);
    be.rmsnormForward(ln, rstd, x, w.inputNorm, Tq, C, cfg.rms_norm_eps);
    be.matmulForward(q, ln, w.wq, Tq, C, NH * HS);
    be.matmulForward(kNew, ln, w.wk, Tq, C, KD);
    be.matmulForward(vNew, ln, w.wv, Tq, C, KD);
    be.ropeForward(q, rope.qCos, rope.qSin, 1, Tq, NH, HS);
    be.ropeForward(kNew, rope.kCos, rope.kSin, 1, Tq, NKV, HS);
    be.attentionForward(att, lse, q, cache.k[l]!, cache.v[l]!, 1, Tq, Tk, NH, NKV, HS);
    be.matmulForward(proj, att, w.wo, Tq, NH * HS, C);
    be.accumulate(x, proj, Tq * C);
    be.rmsnormForward(ln, rstd, x, w.postNorm, Tq, C, cfg.rms_norm_eps);
    be.matmulForward(gate, ln, w.wGate, Tq, C, F);
    be.matmulForward(up, ln, w.wUp, Tq, C, F);
    be.swigluForward(h, gate, up, Tq * F);
    be.matmulForward(proj, h, w.wDown, Tq, F, C);
    be.accumulate(x, proj, Tq * C);
  }
  cache.length = Tk;
  const rows = lastOnly ? 1 : Tq;
  const first = Tq - rows;
  be.rmsnormForward(ln, rstd, x.subarray(first * C), p.finalNorm, rows, C, cfg.rms_norm_eps);
  const out = alloc(rows * cfg.vocab_size); // (rows, V)
  be.matmulForward(out, ln, p.lmHead, rows, C, cfg.vocab_size);
  return out;
}
