// Training-step benchmark: tokens/s, step time, FLOPs/token (DESIGN.md's formula), achieved GFLOPS,
// MFU and peak memory for a model and batch given in bench/configs format, optionally beside the
// same step in PyTorch (the peer) measured in the same sitting. Figures only; nothing here passes or fails.

import { readFileSync } from 'node:fs';
import type { Backend, Precision } from '../kernels/backend.js';
import { parseLlamaConfig, type LlamaConfig } from '../model/config.js';
import { createModel, initWeights } from '../model/llama.js';
import { parameterCount } from '../model/params.js';
import { trainingFlopsPerToken } from '../model/estimate.js';
import { createOptimizerState, llamaAdamW } from '../train/adamw.js';
import { trainStep } from '../train/step.js';
import { Rng } from '../util/rng.js';
import { median, medianSeconds } from './median.js';

export interface BenchConfig {
  description?: string;
  model: LlamaConfig;
  seq_len: number;
  batch_size: number;
}

/** Reads a bench/configs/*.json file: { description?, model: <HF config.json fields>, seq_len, batch_size }. */
export function readBenchConfig(file: string): BenchConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: cannot read a JSON bench config (${(e as Error).message.split('\n')[0]})`);
  }
  const o = raw as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) throw new Error(`${file}: expected an object {model, seq_len, batch_size}`);
  for (const key of Object.keys(o)) {
    if (!['description', 'model', 'seq_len', 'batch_size'].includes(key)) throw new Error(`${file}: unknown field "${key}" (allowed: description, model, seq_len, batch_size)`);
  }
  for (const key of ['seq_len', 'batch_size'] as const) {
    if (!Number.isInteger(o[key]) || (o[key] as number) < 1) throw new Error(`${file}: field "${key}" must be a positive integer`);
  }
  return {
    description: typeof o.description === 'string' ? o.description : undefined,
    model: parseLlamaConfig(o.model, `${file}: model`),
    seq_len: o.seq_len as number,
    batch_size: o.batch_size as number,
  };
}

export interface TrainBenchResult {
  config: string;
  backend: string;
  /** the instruction set of the kernels (float64 for the reference) */
  isa: string;
  threads: number | null;
  /** what the matmuls computed in */
  precision: Precision;
  parameters: number;
  seq_len: number;
  batch_size: number;
  steps: number;
  step_seconds: number; // median
  step_seconds_all: number[];
  tokens_per_second: number; // B*T / median step
  flops_per_token: number;
  achieved_gflops: number;
  mfu: number | null; // achieved / peak_gflops
  peak_gflops: number | null;
  peak_rss_bytes: number;
  loss: number;
  /**
   * The same backend's matmul at 1024^3 (out = x @ W^T, the forward's shape), in the same precision,
   * timed in the same run: the ceiling a training step's GFLOPS is held against. null on the reference.
   */
  gemm_gflops: number | null;
  /** achieved_gflops / gemm_gflops */
  fraction_of_gemm: number | null;
}

/** GFLOPS of be.matmulForward at n x n x n, median of 9 calls after one warm-up. */
export function matmulGflops(be: Backend, n = 1024): number {
  const rng = new Rng(1);
  const x = Float32Array.from({ length: n * n }, () => rng.nextFloat() - 0.5); // (n, n)
  const w = Float32Array.from({ length: n * n }, () => rng.nextFloat() - 0.5); // (n, n)
  const out = new Float32Array(n * n); // (n, n)
  be.matmulForward(out, x, w, n, n, n);
  return (2 * n * n * n) / medianSeconds(9, () => be.matmulForward(out, x, w, n, n, n)) / 1e9;
}

export interface TrainBenchOptions {
  steps?: number; // timed steps (median reported)
  warmup?: number;
  peakGflops?: number | null; // the machine's practical fp32 ceiling for MFU
  onStep?: (i: number, seconds: number) => void;
  /** time the backend's GEMM too (default true; estimates that need only tokens/s skip it) */
  gemmCeiling?: boolean;
}

// One model training on random batches: each call of step() runs one optimizer step and returns
// its seconds. Separate sessions draw the same batches from the same initial weights.
function trainSession(bc: BenchConfig, be: Backend): { step: () => number; loss: () => number } {
  const cfg = bc.model;
  const { seq_len: T, batch_size: B } = bc;
  const m = createModel(cfg, be);
  initWeights(m, 0);
  const opt = createOptimizerState(parameterCount(cfg), Float32Array, be);
  const rng = new Rng(0);
  let loss = NaN;
  return {
    step: () => {
      const tokens = Int32Array.from({ length: B * T }, () => rng.nextInt(cfg.vocab_size));
      const targets = Int32Array.from({ length: B * T }, () => rng.nextInt(cfg.vocab_size));
      const t0 = process.hrtime.bigint();
      loss = trainStep(m, opt, llamaAdamW(), 1e-4, [{ tokens, targets, B, T }]).loss;
      return Number(process.hrtime.bigint() - t0) / 1e9;
    },
    loss: () => loss,
  };
}

function benchResult(name: string, bc: BenchConfig, be: Backend, times: number[], loss: number, opts: TrainBenchOptions): TrainBenchResult {
  const cfg = bc.model;
  const { seq_len: T, batch_size: B } = bc;
  const med = median(times);
  const flopsPerToken = trainingFlopsPerToken(cfg, T);
  const achieved = (flopsPerToken * B * T) / med / 1e9;
  const peak = opts.peakGflops ?? null;
  const gemm = be.name === 'native' && opts.gemmCeiling !== false ? matmulGflops(be) : null;
  return {
    config: name, backend: be.name, isa: be.isa, threads: be.threads, precision: be.precision, parameters: parameterCount(cfg),
    seq_len: T, batch_size: B, steps: times.length, step_seconds: med, step_seconds_all: times,
    tokens_per_second: (B * T) / med, flops_per_token: flopsPerToken, achieved_gflops: achieved,
    mfu: peak ? achieved / peak : null, peak_gflops: peak,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024, loss,
    gemm_gflops: gemm, fraction_of_gemm: gemm ? achieved / gemm : null,
  };
}

export function benchTrain(name: string, bc: BenchConfig, be: Backend, opts: TrainBenchOptions = {}): TrainBenchResult {
  const steps = opts.steps ?? 5;
  const warmup = opts.warmup ?? 1;
  const s = trainSession(bc, be);
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const dt = s.step();
    if (i >= warmup) times.push(dt);
    opts.onStep?.(i - warmup, dt);
  }
  return benchResult(name, bc, be, times, s.loss(), opts);
}

/**
 * Two backends (e.g. fp32 and bf16) on the same model, initial weights and batches, their steps
 * interleaved (a, b, a, b, ...; warm-up steps of both first) so that both see the same machine:
 * timed one after the other, the first pays for the process's cold start (page faults, thread
 * start-up) and each sees whatever load the other did not, which on a shared 2-core VM moved
 * their ratio by ~10%. Each result's GEMM ceiling is timed after all steps. Both models live at
 * once, so each result's peak_rss_bytes (the process's) covers both.
 */
export function benchTrainPair(name: string, bc: BenchConfig, a: Backend, b: Backend, opts: TrainBenchOptions & {
  onStepOf?: (which: 0 | 1, i: number, seconds: number) => void;
} = {}): [TrainBenchResult, TrainBenchResult] {
  const steps = opts.steps ?? 5;
  const warmup = opts.warmup ?? 1;
  const sessions = [trainSession(bc, a), trainSession(bc, b)] as const;
  const times: [number[], number[]] = [[], []];
  for (let i = 0; i < warmup + steps; i++) {
    // a b, b a, a b, ...: whatever one step leaves behind (garbage to collect, dirty cache lines)
    // falls on each model's steps alike
    for (const w of i % 2 === 0 ? [0, 1] as const : [1, 0] as const) {
      const dt = sessions[w].step();
      if (i >= warmup) times[w].push(dt);
      opts.onStepOf?.(w, i - warmup, dt);
    }
  }
  return [benchResult(name, bc, a, times[0], sessions[0].loss(), opts), benchResult(name, bc, b, times[1], sessions[1].loss(), opts)];
}
