// Planning a run at scale before spending on it (`longctx plan`): FLOPs, time at a stated MFU and
// memory per GPU for data / tensor / context-parallel layouts.
//
// FLOPs per token: 6 x matmul parameters + the attention term, which the literature counts two ways:
// causal (6 L T C: only the lower triangle of scores is computed, what `info` and DESIGN.md use) or
// full (12 L T C: every query against every key, Kaplan et al. / Chinchilla's convention). The paper's
// §4.4 FLOPs column follows the full count (see curriculumCheck).
//
// Memory per GPU, bf16 mixed precision with fp32 master weights and AdamW moments (16 bytes per
// parameter: 2 weights + 2 gradients + 4 master + 8 moments), fully sharded over the data- and
// context-parallel ranks (ZeRO-3 / FSDP; ZeRO's paper: 7.5B on 64 GPUs -> 1.9 GB) and split by tensor
// parallelism. Activations per layer of one sequence (Korthikanti et al. 2022, with flash attention,
// so no s^2 term; sequence parallel with TP): 34 s h bytes / t, s = T / cp; with full recomputation
// only each layer's input (2 s h / t) stays, plus one layer's working set. The LM head's logits and
// their fp32 softmax add 6 s V / t.

import type { LlamaConfig } from './config.js';
import { matmulParameters } from './estimate.js';
import { parameterSpecs } from './params.js';

export type AttentionCount = 'full' | 'causal';

export function flopsPerToken(cfg: LlamaConfig, T: number, attention: AttentionCount): number {
  return 6 * matmulParameters(cfg) + (attention === 'full' ? 12 : 6) * cfg.num_hidden_layers * T * cfg.hidden_size;
}

/** Total training FLOPs of `tokens` tokens spread over a length schedule (shares sum to 1). */
export function scheduleFlops(cfg: LlamaConfig, schedule: { seqLen: number; share: number }[], tokens: number, attention: AttentionCount): number {
  return schedule.reduce((s, e) => s + e.share * tokens * flopsPerToken(cfg, e.seqLen, attention), 0);
}

/** Dense bf16 tensor-core peaks (no sparsity) and memory, from the vendors' data sheets. */
export const GPUS: Record<string, { bf16Flops: number; memoryBytes: number }> = {
  A100: { bf16Flops: 312e12, memoryBytes: 80e9 },
  'A100-40': { bf16Flops: 312e12, memoryBytes: 40e9 },
  H100: { bf16Flops: 989e12, memoryBytes: 80e9 },
  H200: { bf16Flops: 989e12, memoryBytes: 141e9 },
  L40S: { bf16Flops: 362e12, memoryBytes: 48e9 },
};

/** "64xH100" -> 64 GPUs of the H100 kind; the error names the flag. */
export function parseGpus(spec: string): { count: number; kind: string } {
  const m = /^(\d+)\s*x\s*([A-Za-z0-9-]+)$/.exec(spec.trim());
  const kind = m ? Object.keys(GPUS).find((k) => k.toLowerCase() === m[2]!.toLowerCase()) : undefined;
  if (!m || !kind || Number(m[1]) < 1) throw new Error(`--gpus: expected COUNTxKIND with KIND one of ${Object.keys(GPUS).join(', ')}, got "${spec}"`);
  return { count: Number(m[1]), kind };
}

export interface LayoutMemory {
  dp: number; tp: number; cp: number;
  recompute: boolean;
  /** bytes per GPU */
  states: number; activations: number; logits: number; total: number;
  fits: boolean;
}

/** bytes per parameter of bf16 mixed-precision AdamW training: weights 2, gradients 2, fp32 master 4, moments 8 */
export const BYTES_PER_PARAMETER = 16;
/** the share of a GPU's memory a plan may fill (the rest: allocator fragmentation, communication buffers, CUDA context) */
export const USABLE_MEMORY = 0.9;

export function layoutMemory(cfg: LlamaConfig, T: number, layout: { dp: number; tp: number; cp: number }, recompute: boolean, gpuBytes: number): LayoutMemory {
  const P = parameterSpecs(cfg).reduce((n, s) => n + s.size, 0);
  const { dp, tp, cp } = layout;
  const states = (BYTES_PER_PARAMETER * P) / (tp * dp * cp);
  const s = T / cp, h = cfg.hidden_size, L = cfg.num_hidden_layers;
  const layer = (34 * s * h) / tp;
  const activations = recompute ? L * (2 * s * h) / tp + layer : L * layer;
  const logits = (6 * s * cfg.vocab_size) / tp;
  const total = states + activations + logits;
  return { dp, tp, cp, recompute, states, activations, logits, total, fits: total <= USABLE_MEMORY * gpuBytes };
}

/**
 * Every layout of `gpus` GPUs with tensor parallelism within a node of 8 (t divides the head
 * counts) and context parallelism dividing the sequence, with and without recomputation; and the
 * chosen one: the least model parallelism (t * cp, then t) that fits, preferring no recomputation.
 */
export function planLayouts(cfg: LlamaConfig, T: number, gpus: number, gpuBytes: number): { all: LayoutMemory[]; best: LayoutMemory | null } {
  const all: LayoutMemory[] = [];
  for (const tp of [1, 2, 4, 8]) {
    // Megatron splits query heads and key/value groups evenly over the tensor-parallel ranks
    if (tp > gpus || cfg.num_attention_heads % tp !== 0 || cfg.num_key_value_heads % tp !== 0) continue;
    for (const cp of [1, 2, 4, 8, 16, 32]) {
      if (tp * cp > gpus || gpus % (tp * cp) !== 0 || T % cp !== 0) continue;
      for (const recompute of [false, true]) all.push(layoutMemory(cfg, T, { dp: gpus / (tp * cp), tp, cp }, recompute, gpuBytes));
    }
  }
  const fitting = all.filter((l) => l.fits).sort((a, b) => Number(a.recompute) - Number(b.recompute) || a.tp * a.cp - b.tp * b.cp || a.tp - b.tp);
  return { all, best: fitting[0] ?? null };
}

/** §4.4's FLOPs column (7B, 4k -> 32k, equal tokens): 3.783e22 from scratch; 3.405e22 / 3.026e22 / 2.270e22 switching at 20 / 40 / 80%. */
export const PAPER_CURRICULUM = { scratch: 3.783e22, switches: [[0.2, 3.405e22], [0.4, 3.026e22], [0.8, 2.270e22]] as [number, number][] };

/** The curriculum's FLOPs ratios to training from scratch under both attention counts, beside the paper's. */
export function curriculumCheck(cfg: LlamaConfig, shortLen: number, longLen: number, tokens: number): { share: number; paper: number; full: number; causal: number }[] {
  const ratio = (share: number, a: AttentionCount): number =>
    scheduleFlops(cfg, [{ seqLen: shortLen, share }, { seqLen: longLen, share: 1 - share }], tokens, a) / scheduleFlops(cfg, [{ seqLen: longLen, share: 1 }], tokens, a);
  return PAPER_CURRICULUM.switches.map(([share, flops]) => ({ share, paper: flops / PAPER_CURRICULUM.scratch, full: ratio(share, 'full'), causal: ratio(share, 'causal') }));
}
