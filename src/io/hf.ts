// Hugging Face model folders: config.json + model.safetensors (or sharded model-0000x-of-0000y.safetensors
// with model.safetensors.index.json) + generation_config.json + tokenizer files. Weights use HF names and
// layout, so a folder from the Hub loads with no mapping (see src/model/params.ts for the flat order).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseLlamaConfig, llamaConfigToJSON, type LlamaConfig, type WeightDtype } from '../model/config.js';
import { parameterSpecs, type ParamSpec } from '../model/params.js';
import { writeDirAtomic, writeFileChunks, dirAtomicLeftovers, type FileData } from '../util/atomic.js';
import {
  readSafetensorsHeader,
  readTensorF32Into,
  writeSafetensorsPlain,
  type SafetensorsHeader,
  type TensorToWrite,
} from './safetensors.js';
import { jsonErrorText } from '../util/json-error.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';

/** A model folder whose config has been read; weights are read on demand. */
export interface ModelFolder {
  dir: string;
  config: LlamaConfig;
  /** Reads the weights into a new flat (P) Float32Array in parameterSpecs(config) order. */
  loadWeights(): Float32Array;
}

export class ModelFolderError extends Error {
  override name = 'ModelFolderError';
}

function fail(where: string, what: string, todo: string): never {
  throw new ModelFolderError(`${where}: ${what}; ${todo}`.replace(/[\r\n]+\s*/g, ' ').trim());
}

const shapeStr = (shape: readonly number[]): string => `[${shape.join(',')}]`;

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** True when `dir` is a folder with config.json and safetensors weights (single file or index). */
export function isModelFolder(dir: string): boolean {
  return (
    isFile(path.join(dir, CONFIG_FILE)) &&
    (isFile(path.join(dir, WEIGHTS_FILE)) || isFile(path.join(dir, WEIGHTS_INDEX_FILE)))
  );
}

/** Read and validate dir/config.json. Errors are one line and say what to do. */
export function readModelConfig(dir: string): LlamaConfig {
  if (!isDir(dir)) {
    const old = fs.existsSync(dir) ? [] : dirAtomicLeftovers(dir).old;
    if (old.length > 0) {
      fail(dir, `not a model folder: it does not exist, but an interrupted save left ${old[0]}`, `rename that folder to ${dir} (or save again)`);
    }
    fail(dir, `not a model folder: ${fs.existsSync(dir) ? 'not a directory' : 'it does not exist'}`, 'pass a folder holding config.json and model.safetensors');
  }
  const file = path.join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    fail(dir, `not a model folder: expected ${CONFIG_FILE} in it`, 'pass a Hugging Face model folder (config.json + model.safetensors)');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(file, `not valid JSON (${jsonErrorText(e)})`, 'fix or regenerate config.json');
  }
  return parseLlamaConfig(raw, file);
}

/** Read dir/config.json now; weights are read when loadWeights() is called. */
export function openModelFolder(dir: string): ModelFolder {
  const config = readModelConfig(dir);
  return { dir, config, loadWeights: () => loadModelWeights(dir, config) };
}

/** Tensors present in HF checkpoints that carry nothing we need (recomputed from config). */
function isIgnorableTensor(name: string, cfg: LlamaConfig): boolean {
  if (/^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name)) return true;
  if (cfg.tie_word_embeddings && name === 'lm_head.weight') return true;
  return false;
}

/** Fails (one line) unless the folder has model.safetensors or a valid model.safetensors.index.json; reads no tensor. */
export function checkWeightFiles(dir: string): void {
  weightLocations(dir);
}

/** name -> file that holds it, from model.safetensors or model.safetensors.index.json. */
function weightLocations(dir: string): { sources: Map<string, string>; describe: string; sharded: boolean } {
  const single = path.join(dir, WEIGHTS_FILE);
  const indexFile = path.join(dir, WEIGHTS_INDEX_FILE);
  if (isFile(single)) return { sources: new Map(), describe: single, sharded: false };
  if (!isFile(indexFile)) {
    const hasBin = isFile(path.join(dir, 'pytorch_model.bin')) || isFile(path.join(dir, 'pytorch_model.bin.index.json'));
    fail(
      dir,
      `no weights: neither ${WEIGHTS_FILE} nor ${WEIGHTS_INDEX_FILE}${hasBin ? ' (pytorch_model.bin is not supported)' : ''}`,
      hasBin ? 'convert the checkpoint to safetensors (transformers save_pretrained(safe_serialization=True))' : 'pass a folder holding safetensors weights',
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
  } catch (e) {
    fail(indexFile, `not valid JSON (${jsonErrorText(e)})`, 'fix or regenerate the index');
  }
  const map = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    fail(indexFile, 'missing "weight_map" object (tensor name -> shard file)', 'fix or regenerate the index');
  }
  const sources = new Map<string, string>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
      fail(indexFile, `weight_map entry for tensor ${JSON.stringify(name)} is ${JSON.stringify(shard)}, not a file name in the folder`, 'fix or regenerate the index');
    }
    sources.set(name, path.join(dir, shard));
  }
  return { sources, describe: indexFile, sharded: true };
}

/** Where each parameter of a folder lives, validated against config.json from the headers alone. */
export interface WeightsPlan {
  /** parameterSpecs order: the spec with its file's header (tensor checked present, right shape) */
  tensors: { spec: ParamSpec; header: SafetensorsHeader }[];
  files: string[]; // safetensors files read
  dtypes: string[]; // distinct dtypes stored
}

/**
 * Check the weights of `dir` against `cfg` reading only the safetensors headers: every tensor present
 * with the shape config.json implies, no unknown tensors. rotary_emb.inv_freq tensors and, with
 * tie_word_embeddings, lm_head.weight are ignored. Errors are one line naming the file and tensor.
 */
export function checkModelWeights(dir: string, cfg: LlamaConfig): WeightsPlan {
  const specs = parameterSpecs(cfg);
  const { sources, describe, sharded } = weightLocations(dir);
  const single = path.join(dir, WEIGHTS_FILE);

  const headers = new Map<string, SafetensorsHeader>();
  const headerOf = (file: string): SafetensorsHeader => {
    let h = headers.get(file);
    if (!h) {
      if (!isFile(file)) fail(file, `shard listed in ${WEIGHTS_INDEX_FILE} is missing`, 'download the missing shard');
      h = readSafetensorsHeader(file);
      headers.set(file, h);
    }
    return h;
  };

  const tensors: WeightsPlan['tensors'] = [];
  const dtypes = new Set<string>();
  for (const spec of specs) {
    const file = sharded ? sources.get(spec.name) : single;
    if (file === undefined) {
      fail(describe, `tensor "${spec.name}" is missing (config.json implies shape ${shapeStr(spec.shape)})`, 'check that the checkpoint matches config.json');
    }
    const header = headerOf(file);
    const info = header.tensors.get(spec.name);
    if (!info) {
      fail(file, `tensor "${spec.name}" is missing (config.json implies shape ${shapeStr(spec.shape)})`, 'check that the checkpoint matches config.json');
    }
    const same = info.shape.length === spec.shape.length && info.shape.every((d, i) => d === spec.shape[i]);
    if (!same) {
      fail(
        file,
        `tensor "${spec.name}" has shape ${shapeStr(info.shape)} in the file but config.json implies ${shapeStr(spec.shape)}`,
        'use the config.json that came with these weights',
      );
    }
    dtypes.add(info.dtype);
    tensors.push({ spec, header });
  }
  // Then every tensor in the files must be one we load or one we knowingly ignore.
  const expected = new Set(specs.map((s) => s.name));
  const unknown: string[] = [];
  const allNames = sharded ? [...sources.keys()] : [...headerOf(single).tensors.keys()];
  for (const name of allNames) {
    if (!expected.has(name) && !isIgnorableTensor(name, cfg)) unknown.push(name);
  }
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 5).map((n) => JSON.stringify(n)).join(', ');
    fail(
      describe,
      `${unknown.length} unexpected tensor(s) ${shown}${unknown.length > 5 ? ', ...' : ''} for a LLaMA model with this config.json`,
      'longctx implements bias-free LLaMA layers only; check config.json (num_hidden_layers, tie_word_embeddings) or the architecture',
    );
  }

  return { tensors, files: [...headers.keys()], dtypes: [...dtypes] };
}

/**
 * Read the weights of `dir` into a flat (P) Float32Array in parameterSpecs(cfg) order, after
 * checkModelWeights, one tensor at a time straight into its slice (F16/BF16/F64 converted there).
 */
export function loadModelWeights(dir: string, cfg: LlamaConfig): Float32Array {
  const plan = checkModelWeights(dir, cfg);
  const total = plan.tensors.reduce((n, t) => n + t.spec.size, 0);
  const flat = new Float32Array(total); // (P)
  for (const { spec, header } of plan.tensors) {
    const slice = flat.subarray(spec.offset, spec.offset + spec.size);
    readTensorF32Into(header, spec.name, slice);
    // a NaN or Inf weight makes every score NaN downstream (eval printed "ppl NaN" and exited 0)
    const bad = firstNonFinite(slice);
    if (bad >= 0) fail(header.path, `tensor "${spec.name}" holds ${slice[bad]} at element ${bad}`, 'the weights are damaged (a diverged run?): use an earlier checkpoint');
  }
  return flat;
}

function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}

/** Extra files a save may carry: name (relative, no '..') -> content. */
export interface SaveExtra {
  /** name -> content; a list of chunks is written without concatenating (large tensors) */
  files?: Record<string, FileData>;
  /** what the weights are stored as (default float32; config.json's torch_dtype says it) */
  dtype?: WeightDtype;
}

const SAFETENSORS_DTYPE: Record<WeightDtype, 'F32' | 'BF16' | 'F16'> = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' };

function generationBase(data: FileData | undefined, dir: string): Record<string, unknown> {
  if (data === undefined) return {};
  const text = typeof data === 'string' ? data : Buffer.concat((data instanceof Uint8Array ? [data] : data).map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength))).toString('utf8');
  const j = JSON.parse(text) as unknown;
  if (typeof j !== 'object' || j === null || Array.isArray(j)) fail(dir, 'the generation_config.json to carry over is not a JSON object', 'this is a bug in the caller');
  return j as Record<string, unknown>;
}

/** Files of a Hugging Face model folder that a model trained from it keeps: its tokenizer's settings (chat template, special tokens) and generation defaults. */
export const CARRIED_FILES = ['tokenizer_config.json', 'special_tokens_map.json', GENERATION_CONFIG_FILE] as const;

/** CARRIED_FILES that `dir` has, as they are (each checked to be a JSON object). */
export function carriedFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of CARRIED_FILES) {
    const p = path.join(dir, name);
    if (!fs.existsSync(p)) continue;
    const text = fs.readFileSync(p, 'utf8');
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch (e) {
      fail(p, `not valid JSON (${jsonErrorText(e)})`, 'fix or remove the file');
    }
    if (typeof j !== 'object' || j === null || Array.isArray(j)) fail(p, 'not a JSON object', 'fix or remove the file');
    out[name] = text;
  }
  return out;
}

/** The dtype a folder's weights are stored in when all are one float dtype of WEIGHT_DTYPES, else float32 (what extend and instruct write by default). */
export function folderDtype(dir: string, cfg: LlamaConfig): WeightDtype {
  const d = checkModelWeights(dir, cfg).dtypes;
  return d.length === 1 && d[0] === 'BF16' ? 'bfloat16' : d.length === 1 && d[0] === 'F16' ? 'float16' : 'float32';
}

/**
 * Refuses a save target the save would wipe by mistake: the folder is replaced as a whole, so it must
 * be new, empty, or a model folder already (config.json). The CLI asks for --force on top of this.
 */
export function checkSaveTarget(dir: string): void {
  let entries: string[];
  try {
    if (!fs.statSync(dir).isDirectory()) fail(dir, 'is a file, not a folder', 'choose another output folder');
    entries = fs.readdirSync(dir);
  } catch (e) {
    if (e instanceof ModelFolderError) throw e;
    return; // missing: created
  }
  if (entries.length > 0 && !entries.includes(CONFIG_FILE)) {
    fail(dir, `not empty and not a model folder (no ${CONFIG_FILE}); saving replaces the folder as a whole`, 'choose a new or empty folder');
  }
}

/**
 * Write a complete model folder atomically (writeDirAtomic: all or nothing; an existing folder at `dir`
 * is replaced as a whole, so pass every file it should keep in extra.files): config.json
 * (llamaConfigToJSON, 2-space JSON), model.safetensors (F32 or extra.dtype, metadata {format: "pt"}),
 * generation_config.json (bos/eos), then extra.files (tokenizer.json, trainer_state.json, ...).
 */
export function saveModelFolder(dir: string, cfg: LlamaConfig, flat: Float32Array, extra: SaveExtra = {}): void {
  checkSaveTarget(dir);
  const specs = parameterSpecs(cfg);
  const total = specs.reduce((n, s) => n + s.size, 0);
  if (flat.length !== total) {
    fail(dir, `parameter buffer has ${flat.length} floats but config needs ${total}`, 'this is a bug in the caller');
  }
  const reserved = new Set([CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE]);
  // a generation_config.json given (the base model's) keeps its fields; the ids are the config's
  const { [GENERATION_CONFIG_FILE]: baseGen, ...others } = extra.files ?? {};
  const extraFiles = Object.entries(others);
  for (const [name] of extraFiles) {
    const parts = name.split(/[\\/]/);
    if (name === '' || path.isAbsolute(name) || parts.includes('..') || parts.includes('') || parts.includes('.')) {
      fail(dir, `extra file name ${JSON.stringify(name)} is not a plain relative path`, 'use names like "tokenizer.json"');
    }
    if (reserved.has(name)) fail(dir, `extra file "${name}" would overwrite a file the save writes itself`, 'drop it from extra.files');
  }
  const dtype = extra.dtype ?? 'float32';
  if (!Object.hasOwn(SAFETENSORS_DTYPE, dtype)) fail(dir, `dtype ${JSON.stringify(dtype)} is not one longctx writes`, `give one of ${Object.keys(SAFETENSORS_DTYPE).join(', ')}`);
  const tensors: TensorToWrite[] = specs.map((s) => ({
    name: s.name,
    shape: s.shape,
    data: flat.subarray(s.offset, s.offset + s.size),
    dtype: SAFETENSORS_DTYPE[dtype],
  }));
  writeDirAtomic(dir, (tmp) => {
    writeFileChunks(path.join(tmp, CONFIG_FILE), JSON.stringify(llamaConfigToJSON(cfg, dtype), null, 2) + '\n');
    writeSafetensorsPlain(path.join(tmp, WEIGHTS_FILE), tensors, { format: 'pt' });
    const gen = { ...generationBase(baseGen, dir), bos_token_id: cfg.bos_token_id, eos_token_id: cfg.eos_token_ids && cfg.eos_token_ids.length > 1 ? cfg.eos_token_ids : cfg.eos_token_id };
    writeFileChunks(path.join(tmp, GENERATION_CONFIG_FILE), JSON.stringify(gen, null, 2) + '\n');
    for (const [name, content] of extraFiles) {
      const p = path.join(tmp, name);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      writeFileChunks(p, content);
    }
  });
}
