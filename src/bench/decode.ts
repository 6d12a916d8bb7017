// Decoding benchmark: prefill and greedy decode of a bench config's model through the KV cache,
// and how close decoding comes to memory speed. A decode step reads every weight once plus the
// KV cache so far, and does ~2 FLOPs per weight: memory-bound. So the figure that matters is the
// bytes it reads per second against what this machine can move, measured in the same run with a
// plain copy of a buffer far larger than the caches (one thread, STREAM's "copy" count: read +
// write bytes; the decode itself runs on the backend's threads).

import type { Backend } from '../kernels/backend.js';
import type { LlamaConfig } from '../model/config.js';
import { createKVCache, createModel, forwardCached, initWeights } from '../model/llama.js';
import { parameterCount } from '../model/params.js';
import { argmax } from '../model/sample.js';
import { Rng } from '../util/rng.js';
import { median, medianSeconds } from './median.js';

export interface DecodeBenchResult {
  config: string;
  backend: string;
  isa: string;
  threads: number | null;
  parameters: number;
  prompt: number;
  generated: number;
  prefill_tokens_per_second: number;
  decode_tokens_per_second: number; // median step
  decode_step_seconds: number[];
  /** weights (4 bytes each) + the K and V read at the median step's context */
  bytes_per_token: number;
  decode_gb_per_second: number;
  copy_gb_per_second: number; // median of 5 copies
  /** decode_gb_per_second / copy_gb_per_second */
  fraction_of_copy: number;
  /**
   * Read bandwidth on the backend's own threads: its sumSquares over 256 MiB (a streaming read, as a
   * decode step's weights are). A read stream moves more bytes per second than a copy counts (a
   * copy also pays for reading each destination line before it writes it), so this is the tighter
   * yardstick.
   */
  read_gb_per_second: number;
  /** decode_gb_per_second / read_gb_per_second */
  fraction_of_read: number;
}


/** Read bandwidth (GB/s) of `be`'s sumSquares over `bytes` (default 256 MiB), median of 5. */
export function readBandwidth(be: Backend, bytes = 256 * 2 ** 20): number {
  const n = bytes / 4;
  const a = new Float32Array(n).fill(1); // (n) touched, so pages exist
  be.sumSquares(a, n); // warm-up
  return bytes / medianSeconds(5, () => be.sumSquares(a, n)) / 1e9;
}

/** Copy bandwidth of this machine (GB/s, read + write bytes) over `bytes` (default 256 MiB: far beyond any cache). */
export function copyBandwidth(bytes = 256 * 2 ** 20): number {
  const n = bytes / 4;
  const src = new Float32Array(n).fill(1); // (n) touched, so pages exist
  const dst = new Float32Array(n).fill(0); // (n)
  dst.set(src); // warm-up
  const s = medianSeconds(5, () => dst.set(src));
  return (2 * bytes) / s / 1e9;
}

/** The benchmark's model (weights from seed 0) and prompt (random ids, seed 0): the same for us and a peer. */
export function decodeInputs(cfg: LlamaConfig, be: Backend, prompt: number): { model: ReturnType<typeof createModel>; tokens: Int32Array } {
  const model = createModel(cfg, be);
  initWeights(model, 0);
  const rng = new Rng(0);
  return { model, tokens: Int32Array.from({ length: prompt }, () => rng.nextInt(cfg.vocab_size)) }; // tokens (prompt)
}

/** K and V bytes (float32) a decode step reads at the median step's context. */
export function kvBytesAtMedianStep(cfg: LlamaConfig, prompt: number, generate: number): number {
  const ctx = prompt + Math.floor(generate / 2);
  return 2 * cfg.num_hidden_layers * ctx * cfg.num_key_value_heads * cfg.head_dim * 4;
}

/** `inputs`: decodeInputs' model and prompt, when the caller needs them too (a peer on the same weights). */
export function benchDecode(name: string, cfg: LlamaConfig, be: Backend, opts: { prompt: number; generate: number },
  inputs: ReturnType<typeof decodeInputs> = decodeInputs(cfg, be, opts.prompt)): DecodeBenchResult {
  const { prompt, generate } = opts;
  if (prompt + generate > cfg.max_position_embeddings) throw new Error(`--prompt ${prompt} + --new ${generate} exceeds the model's context of ${cfg.max_position_embeddings}`);
  const { model: m, tokens } = inputs;
  const P = parameterCount(cfg);
  // a warm-up of a few steps in a cache of its own, so the timed run starts warm
  const warm = createKVCache(m, 8);
  forwardCached(m, warm, tokens.subarray(0, 4), true);
  forwardCached(m, warm, Int32Array.of(1), true);
  const cache = createKVCache(m, prompt + generate);
  const t0 = process.hrtime.bigint();
  let row = forwardCached(m, cache, tokens, true);
  const prefill = Number(process.hrtime.bigint() - t0) / 1e9;
  const steps: number[] = [];
  for (let i = 0; i < generate; i++) {
    const next = argmax(row);
    const s0 = process.hrtime.bigint();
    row = forwardCached(m, cache, Int32Array.of(next), true);
    steps.push(Number(process.hrtime.bigint() - s0) / 1e9);
  }
  const med = median(steps);
  const bytes = 4 * P + kvBytesAtMedianStep(cfg, prompt, generate);
  const decodeGbs = bytes / med / 1e9;
  const copy = copyBandwidth(), read = readBandwidth(be);
  return {
    config: name, backend: be.name, isa: be.isa, threads: be.threads, parameters: P, prompt, generated: generate,
    prefill_tokens_per_second: prompt / prefill, decode_tokens_per_second: 1 / med, decode_step_seconds: steps,
    bytes_per_token: bytes, decode_gb_per_second: decodeGbs, copy_gb_per_second: copy, fraction_of_copy: decodeGbs / copy,
    read_gb_per_second: read, fraction_of_read: decodeGbs / read,
  };
}
