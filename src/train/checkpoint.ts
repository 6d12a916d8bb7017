// Training checkpoints: a Hugging Face model folder (loadable by anything that reads one) plus,
// beside the weights, what resuming needs: AdamW moments and the trainer's state (step, RNG, data
// position, schedule). Written atomically as one folder: a crash mid-save leaves the previous one.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../kernels/backend.js';
import { createModel, type LlamaModel } from '../model/llama.js';
import { parameterSpecs } from '../model/params.js';
import { openModelFolder, saveModelFolder } from '../io/hf.js';
import type { FileData } from '../util/atomic.js';
import { readSafetensorsHeader, readTensorF32Into, safetensorsChunks, type TensorToWrite } from '../io/safetensors.js';
import { createOptimizerState, type AdamWConfig, type OptimizerState } from './adamw.js';
import type { LrSchedule } from './schedule.js';
import { jsonErrorText } from '../util/json-error.js';

export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';

export interface TrainerState {
  step: number; // optimizer steps taken
  tokens: number; // training tokens consumed
  rng: number[]; // Rng.state()
  schedule: LrSchedule;
  adam: AdamWConfig;
  data: unknown; // the data iterator's resume position (opaque here)
  /** training seconds of every process of the run up to this checkpoint (absent in older checkpoints) */
  seconds?: number;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

function fail(file: string, what: string, todo: string): never {
  throw new CheckpointError(`${file}: ${what}; ${todo}`);
}

/** Atomically write model folder + optimizer.safetensors + trainer_state.json (+ extra files such as tokenizer.json). */
export function saveCheckpoint(dir: string, m: LlamaModel, opt: OptimizerState, state: TrainerState, files: Record<string, FileData> = {}): void {
  if (!(m.params.flat instanceof Float32Array) || !(opt.m instanceof Float32Array) || !(opt.v instanceof Float32Array)) {
    throw new CheckpointError(`${dir}: checkpoints store float32 models only`);
  }
  const tensors: TensorToWrite[] = [];
  for (const s of parameterSpecs(m.cfg)) {
    tensors.push({ name: `exp_avg.${s.name}`, shape: s.shape, data: opt.m.subarray(s.offset, s.offset + s.size) });
    tensors.push({ name: `exp_avg_sq.${s.name}`, shape: s.shape, data: opt.v.subarray(s.offset, s.offset + s.size) });
  }
  const optFile = path.join(dir, OPTIMIZER_FILE);
  saveModelFolder(dir, m.cfg, m.params.flat, {
    files: {
      ...files,
      [OPTIMIZER_FILE]: safetensorsChunks(optFile, tensors, { step: String(opt.step) }),
      [TRAINER_STATE_FILE]: JSON.stringify({ ...state, optimizerStep: opt.step }, null, 2) + '\n',
    },
  });
}

/** Load a checkpoint written by saveCheckpoint onto the given backend. */
export function loadCheckpoint(dir: string, be: Backend): { model: LlamaModel; opt: OptimizerState; state: TrainerState } {
  const folder = openModelFolder(dir);
  const model = createModel(folder.config, be, { weights: folder.loadWeights() });
  const stateFile = path.join(dir, TRAINER_STATE_FILE);
  if (!fs.existsSync(stateFile)) fail(stateFile, 'missing', 'this folder is a model, not a training checkpoint; start a new run from it instead of resuming');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    fail(stateFile, `not valid JSON (${jsonErrorText(e)})`, 'resume from an earlier checkpoint');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(stateFile, 'not a JSON object', 'resume from an earlier checkpoint');
  for (const key of ['step', 'tokens', 'rng', 'schedule', 'adam', 'optimizerStep'] as const) {
    if (raw[key] === undefined) fail(stateFile, `missing field "${key}"`, 'resume from an earlier checkpoint');
  }
  // a wrong type here would resume into a loop that trains nothing and exits 0
  for (const key of ['step', 'tokens', 'optimizerStep'] as const) {
    if (!(Number.isSafeInteger(raw[key]) && (raw[key] as number) >= 0)) fail(stateFile, `field "${key}" is ${JSON.stringify(raw[key])}, expected a non-negative integer`, 'resume from an earlier checkpoint');
  }
  if (!(Array.isArray(raw.rng) && raw.rng.length > 0 && raw.rng.every((x) => Number.isInteger(x)))) fail(stateFile, 'field "rng" is not a list of integers', 'resume from an earlier checkpoint');
  if (typeof raw.schedule !== 'object' || raw.schedule === null || typeof raw.adam !== 'object' || raw.adam === null) fail(stateFile, 'fields "schedule" and "adam" must be objects', 'resume from an earlier checkpoint');
  if (raw.seconds !== undefined && !(typeof raw.seconds === 'number' && raw.seconds >= 0)) fail(stateFile, `field "seconds" is ${JSON.stringify(raw.seconds)}, expected a non-negative number`, 'resume from an earlier checkpoint');
  const optFile = path.join(dir, OPTIMIZER_FILE);
  if (!fs.existsSync(optFile)) fail(optFile, 'missing', 'resume from an earlier checkpoint');
  const header = readSafetensorsHeader(optFile);
  const P = model.params.flat.length;
  const opt: OptimizerState = { ...createOptimizerState(P, Float32Array, model.be), step: Number(raw.optimizerStep) };
  for (const s of parameterSpecs(model.cfg)) {
    for (const [prefix, dst] of [['exp_avg', opt.m], ['exp_avg_sq', opt.v]] as const) {
      const name = `${prefix}.${s.name}`;
      const info = header.tensors.get(name);
      if (!info) fail(optFile, `tensor "${name}" is missing`, 'resume from an earlier checkpoint');
      if (info.shape.join(',') !== s.shape.join(',')) fail(optFile, `tensor "${name}" has shape [${info.shape.join(',')}], expected [${s.shape.join(',')}]`, 'resume from a checkpoint of this model');
      readTensorF32Into(header, name, dst.subarray(s.offset, s.offset + s.size) as Float32Array);
    }
  }
  const { optimizerStep: _, ...state } = raw;
  return { model, opt, state: state as unknown as TrainerState };
}
