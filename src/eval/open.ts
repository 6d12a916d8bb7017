// One way to open a model, for every command: an http(s):// URL is an OpenAI-compatible server, a
// .gguf file runs on llama.cpp, anything else is a model folder (or a run folder with model/) on our
// engine. Resolve the argument, read its config, choose the context, check it fits in memory, open.
// `eval`, `chat`, `serve`, `instruct generate` and the evaluate recipe all come through here.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EvalModel } from './model.js';
import { isServerUrl, openOpenAIModel, type OpenAIEvalModel } from './backends/openai.js';
import { openLlamaCppModel } from './backends/llamacpp.js';
import { openLocalModel, DEFAULT_CHUNK, type LocalEvalModel } from './backends/local.js';
import { checkEvalMemory, MAX_EVAL_LEN } from './memory.js';
import { readModelConfig } from '../io/hf.js';
import type { LlamaConfig } from '../model/config.js';
import type { Backend } from '../kernels/backend.js';
import { definedOnly } from '../util/defined.js';

/** Which engine runs a model file: ours (model folders) or llama.cpp (.gguf). Servers are told by their URL. */
export type Engine = 'local' | 'llama.cpp';

export interface OpenModelOptions {
  /** force an engine (default: llama.cpp for a .gguf, ours for a folder) */
  engine?: Engine;
  /** our engine: the kernels (default: native when the addon loads) */
  backend?: Backend;
  /** servers: the served model's tokenizer (not needed for a longctx server) */
  tokenizer?: string;
  apiKey?: string | null;
  /** servers: which served model (default the only one listed) */
  modelId?: string;
  concurrency?: number;
  retries?: number;
  timeoutMs?: number;
  /** local and llama.cpp: the context to check against free memory (default the model's trained context) */
  ctx?: number;
  /** the flag that sets ctx, named when it does not fit (default --ctx) */
  ctxFlag?: string;
  /** false: the caller checks memory itself, once it knows its longest sequence (eval) */
  checkMemory?: boolean;
  /** the longest sequence the model will be given (default ctx); the KV cache grows to it */
  maxContext?: number;
  /** prefill rows per forward (local), batch (llama.cpp) */
  chunk?: number;
  /** local: read the weights on first use, so that what the caller prepares first can fail fast */
  defer?: boolean;
  /** llama.cpp: override the file's RoPE base */
  ropeTheta?: number;
  /** the model's name in outputs (default: the argument's base name) */
  name?: string;
}

export interface OpenedModel {
  model: EvalModel;
  kind: 'openai' | 'llama.cpp' | 'local';
  /** our engine's model, for callers that sample or serve themselves (chat, serve) */
  local: LocalEvalModel | null;
  /** the server client (its context and prompt-logprob support), for eval */
  server: OpenAIEvalModel | null;
  /** the folder the model came from (local only) */
  dir: string | null;
  /** the model's shape (local and llama.cpp), for memory checks; null for a server */
  config: LlamaConfig | null;
  /** the context the model was trained for, when known */
  trainedContext: number | undefined;
  close(): Promise<void>;
}

/** A run folder (with model/) stands for its model. */
export function resolveModelDir(dir: string): string {
  if (!fs.existsSync(path.join(dir, 'config.json')) && fs.existsSync(path.join(dir, 'model', 'config.json'))) return path.join(dir, 'model');
  return dir;
}

export { isServerUrl };

function checkContext(cfg: LlamaConfig, ctx: number, o: OpenModelOptions): void {
  const flag = o.ctxFlag ?? '--ctx';
  if (!Number.isSafeInteger(ctx) || ctx < 1) throw new Error(`${flag} must be a positive integer, got ${ctx}`);
  if (o.maxContext !== undefined && (!Number.isSafeInteger(o.maxContext) || o.maxContext < 1)) throw new Error(`maxContext must be a positive integer, got ${o.maxContext}`);
  if (ctx > MAX_EVAL_LEN) throw new Error(`${flag} ${ctx} is above the limit of ${MAX_EVAL_LEN} tokens`);
  if (o.checkMemory !== false) checkEvalMemory(cfg, ctx, { chunk: o.chunk ?? DEFAULT_CHUNK, flag });
}

export async function openModel(spec: string, o: OpenModelOptions = {}): Promise<OpenedModel> {
  if (isServerUrl(spec)) {
    if (o.engine !== undefined) throw new Error(`${spec} is a server; --backend ${o.engine} is for a model file or folder`);
    const m = await openOpenAIModel(spec, {
      apiKey: o.apiKey ?? null, concurrency: o.concurrency ?? 1, ...definedOnly({ tokenizer: o.tokenizer, modelId: o.modelId, retries: o.retries, timeoutMs: o.timeoutMs }),
    });
    return { model: m, kind: 'openai', local: null, server: m, dir: null, config: null, trainedContext: m.trainedContext, close: async () => m.close() };
  }
  if (o.engine !== undefined && o.engine !== 'local' && o.engine !== 'llama.cpp') throw new Error(`engine ${JSON.stringify(o.engine)} is not one longctx runs; give local or llama.cpp (or a server URL as the model)`);
  if (o.tokenizer !== undefined) throw new Error('--tokenizer is for server URLs; a model folder or .gguf file brings its own tokenizer');
  const gguf = /\.gguf$/i.test(spec);
  if (o.engine === 'llama.cpp' || (o.engine === undefined && gguf)) {
    if (!gguf) throw new Error(`${spec}: --backend llama.cpp takes a .gguf file (make one with: longctx export gguf MODEL --out model.gguf)`);
    const probe = openLlamaCppModel(spec); // header, config and tokenizer only: weights load on first use
    const ctx = o.ctx ?? probe.trainedContext;
    // llama.cpp's F32 KV cache and weights are about what our engine needs: the same check
    checkContext(probe.config, ctx, o);
    const m = openLlamaCppModel(spec, {
      maxContext: o.maxContext ?? ctx, ...definedOnly({ batch: o.chunk, ropeFreqBase: o.ropeTheta }),
    });
    return { model: m, kind: 'llama.cpp', local: null, server: null, dir: null, config: probe.config, trainedContext: probe.trainedContext, close: () => m.close() };
  }
  if (gguf) throw new Error(`${spec}: a .gguf file runs on --backend llama.cpp; the local engine reads model folders`);
  if (o.ropeTheta !== undefined) throw new Error('--rope-theta is for --backend llama.cpp; for a model folder, change rope_theta in its config.json');
  const dir = resolveModelDir(spec);
  const cfg = readModelConfig(dir); // "not a model folder" errors come from here, before anything is loaded
  const ctx = o.ctx ?? cfg.max_position_embeddings;
  checkContext(cfg, ctx, o);
  const m = openLocalModel(dir, {
    maxContext: o.maxContext ?? ctx, name: o.name ?? path.basename(path.resolve(spec)), // a run folder's name, not "model"
    ...definedOnly({ chunk: o.chunk, backend: o.backend }), ...(o.defer ? { defer: true } : {}),
  });
  return { model: m, kind: 'local', local: m, server: null, dir, config: cfg, trainedContext: cfg.max_position_embeddings, close: async () => {} };
}
