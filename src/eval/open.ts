// Any model argument as an EvalModel: an http(s):// URL is an OpenAI-compatible server, a .gguf file
// runs on llama.cpp, anything else is a model folder (or a run folder with model/) on our engine.
// What `instruct generate` and `chat` use to open the model they were given.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EvalModel } from './model.js';
import { openOpenAIModel } from './backends/openai.js';
import { openLlamaCppModel } from './backends/llamacpp.js';
import { openLocalModel, DEFAULT_CHUNK, type LocalEvalModel } from './backends/local.js';
import { checkEvalMemory } from './memory.js';
import { readModelConfig } from '../io/hf.js';

export interface OpenModelOptions {
  /** servers: the served model's tokenizer (not needed for a longctx server) */
  tokenizer?: string;
  apiKey?: string | null;
  /** servers: which served model (default the only one listed) */
  modelId?: string;
  concurrency?: number;
  retries?: number;
  timeoutMs?: number;
  /** local and llama.cpp: the longest sequence (default the model's max_position_embeddings); checked against free memory */
  ctx?: number;
  /** prefill rows per forward (local), batch (llama.cpp) */
  chunk?: number;
}

export interface OpenedModel {
  model: EvalModel;
  kind: 'openai' | 'llama.cpp' | 'local';
  /** the local engine's model, for callers that sample themselves (chat) */
  local: LocalEvalModel | null;
  /** the folder the model came from (local only) */
  dir: string | null;
  close(): Promise<void>;
}

/** A run folder (with model/) stands for its model. */
export function resolveModelDir(dir: string): string {
  if (!fs.existsSync(path.join(dir, 'config.json')) && fs.existsSync(path.join(dir, 'model', 'config.json'))) return path.join(dir, 'model');
  return dir;
}

export async function openEvalModel(spec: string, o: OpenModelOptions = {}): Promise<OpenedModel> {
  if (/^https?:\/\//i.test(spec)) {
    const m = await openOpenAIModel(spec, {
      ...(o.tokenizer !== undefined ? { tokenizer: o.tokenizer } : {}), ...(o.modelId !== undefined ? { modelId: o.modelId } : {}),
      apiKey: o.apiKey ?? null, concurrency: o.concurrency ?? 1, ...(o.retries !== undefined ? { retries: o.retries } : {}),
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    });
    return { model: m, kind: 'openai', local: null, dir: null, close: async () => m.close() };
  }
  if (o.tokenizer !== undefined) throw new Error('--tokenizer is for server URLs; a model folder or .gguf file brings its own tokenizer');
  if (/\.gguf$/i.test(spec)) {
    const probe = openLlamaCppModel(spec); // header, config and tokenizer only: weights load on first use
    const ctx = o.ctx ?? probe.trainedContext;
    checkEvalMemory(probe.config, ctx, o.chunk ?? DEFAULT_CHUNK, undefined, '--ctx');
    const m = openLlamaCppModel(spec, { maxContext: ctx, ...(o.chunk !== undefined ? { batch: o.chunk } : {}) });
    return { model: m, kind: 'llama.cpp', local: null, dir: null, close: () => m.close() };
  }
  const dir = resolveModelDir(spec);
  const cfg = readModelConfig(dir); // "not a model folder" errors come from here
  const ctx = o.ctx ?? cfg.max_position_embeddings;
  checkEvalMemory(cfg, ctx, o.chunk ?? DEFAULT_CHUNK, undefined, '--ctx');
  // named after what the user gave (a run folder's name, not "model")
  const m = openLocalModel(dir, { maxContext: ctx, name: path.basename(path.resolve(spec)), ...(o.chunk !== undefined ? { chunk: o.chunk } : {}) });
  return { model: m, kind: 'local', local: m, dir, close: async () => {} };
}
