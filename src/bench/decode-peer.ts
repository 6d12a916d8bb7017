// llama.cpp beside `bench decode`: the same model (same seed, so the same weights), written as a
// GGUF (F32 and F16) by `export gguf`'s code and run by llama.cpp through node-llama-cpp's prebuilt
// CPU binary (the engine longctx's `eval --model F.gguf` uses: F32 KV cache, no flash attention,
// greedy), on the same prompt, with the same thread count, in the same run. Figures only.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { LlamaConfig } from '../model/config.js';
import { saveModelFolder } from '../io/hf.js';
import { exportGguf } from '../io/gguf-llama.js';
import { trainTokenizer } from '../data/tokenizer/train.js';
import { saveTokenizer } from '../data/tokenizer/load.js';
import { parseSources, readSources } from '../data/sources.js';
import { openLlamaCppModel } from '../eval/backends/llamacpp.js';
import { median } from './median.js';

export interface PeerDecodeResult {
  engine: 'llama.cpp (node-llama-cpp)';
  type: 'F32' | 'F16';
  file_bytes: number;
  threads: number;
  prefill_tokens_per_second: number;
  decode_tokens_per_second: number; // median step
  /** the file's weight bytes + the F32 K and V read at the median step's context */
  bytes_per_token: number;
  decode_gb_per_second: number;
}

/**
 * Times llama.cpp on `weights` (the model bench decode built) exported as F32 and F16 GGUF files.
 * `kvBytes` is what the median step reads of the KV cache (F32, as ours).
 */
export async function llamaCppDecode(cfg: LlamaConfig, weights: Float32Array, prompt: Int32Array, generate: number,
  threads: number, kvBytes: number): Promise<PeerDecodeResult[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-decode-peer-'));
  try {
    const folder = path.join(dir, 'model');
    saveModelFolder(folder, cfg, weights);
    // a GGUF carries a tokenizer of the model's vocabulary size; the prompt is token ids, so any will do
    saveTokenizer(folder, trainTokenizer(readSources(parseSources('moby-dick')), { vocabSize: cfg.vocab_size }));
    const out: PeerDecodeResult[] = [];
    for (const type of ['F32', 'F16'] as const) {
      const file = path.join(dir, `model-${type}.gguf`);
      exportGguf(folder, file, { type });
      const m = openLlamaCppModel(file, { threads, batch: Math.max(32, prompt.length) });
      try {
        await m.generate(prompt.subarray(0, 4), 2); // warm-up: load the file, make a context
        const marks: bigint[] = [];
        let last = prompt.length;
        const t0 = process.hrtime.bigint();
        const got = await m.generate(prompt, generate, { onProgress: (done) => { if (done > last) { last = done; marks.push(process.hrtime.bigint()); } } });
        marks.length = Math.min(marks.length, got.length); // an early end-of-sequence stop reports the total once more
        // the first mark follows the prompt and the first token's pick; each next one, one decode step
        const prefill = Number(marks[0]! - t0) / 1e9;
        const steps = marks.slice(1).map((t, i) => Number(t - marks[i]!) / 1e9);
        if (steps.length === 0) throw new Error(`llama.cpp stopped after ${marks.length} token(s) (the model generated its end-of-sequence id); try another --prompt length`);
        const fileBytes = statSync(file).size;
        const med = median(steps);
        out.push({
          engine: 'llama.cpp (node-llama-cpp)', type, file_bytes: fileBytes, threads,
          prefill_tokens_per_second: prompt.length / prefill, decode_tokens_per_second: 1 / med,
          bytes_per_token: fileBytes + kvBytes, decode_gb_per_second: (fileBytes + kvBytes) / med / 1e9,
        });
      } finally {
        await m.close();
      }
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
