// Recipes: pretrain a short-context base model, extend it to a long context (the paper's continual
// pretraining with a RoPE change), and resume either. Each reads top to bottom: resolve the
// configuration, write it, build model/optimizer/data, hand them to the training loop.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { presetConfig, ropeParamsOf, type LlamaConfig, type WeightDtype } from '../model/config.js';
import { createModel, initWeights } from '../model/llama.js';
import { parameterCount } from '../model/params.js';
import { describeRope, parseRopeScaling } from '../model/rope.js';
import type { Backend } from '../kernels/backend.js';
import { openDataset, type Dataset } from '../data/dataset.js';
import { createBatchIterator, restoreBatchIterator, type BatchIteratorState } from '../data/pack.js';
import type { MixOptions } from '../data/mix.js';
import { checkSynthetic } from '../data/synthetic.js';
import { openModelFolder, isModelFolder, folderDtype, carriedFiles } from '../io/hf.js';
import { createOptimizerState, llamaAdamW } from '../train/adamw.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import { parseSchedule, planStages } from '../train/curriculum.js';
import { backendChange, changePeakLr, backendRecord, finishedSummary, withRunPrecision, latestCheckpoint, lockRun, readRunConfig, truncateMetrics, unlockRun, writeRunConfig, FINAL_MODEL, RESOLVED_CONFIG, type ExtendRunConfig, type PretrainRunConfig } from '../train/run.js';
import { chooseMicroBatch, memoryBudget, train, validate, type TrainData, type TrainEnv, type TrainState, type TrainSummary } from '../train/trainer.js';
import { datasetTrainData, evalBatches } from '../train/text-data.js';
import { writeFileAtomic } from '../util/atomic.js';
import { Rng } from '../util/rng.js';
import { PAPER_GEOMETRY } from '../model/rope-geometry.js';

/** Options both recipes share. Defaults are documented in the README next to the paper's. */
export interface CommonOptions {
  out: string;
  schedule: string; // "256" or "256:0.8,2048:0.2"
  tokens: number;
  tokensPerStep?: number;
  lr?: number;
  minLr?: number; // default lr / 10 (Llama 2's cosine floor)
  warmup?: number; // steps; default 5% of the run
  seed: number;
  evalEvery?: number; // default: 10 evaluations per run
  evalSequences: number;
  evalLengths?: number[];
  checkpointEvery?: number; // default: 10 checkpoints per run
  keepCheckpoints: number;
  microBatch?: number;
  mix: MixOptions;
  /** share of rows replaced by repeated training spans (data/synthetic.ts); default 0 */
  synthetic?: number;
  /** optimizer steps at the start whose rows are all repeat rows (data/synthetic.ts); default 0 */
  syntheticFirst?: number;
  /** share of the synthetic rows that are key-value recall rows (data/synthetic.ts); default 0 */
  syntheticRecall?: number;
  /** share of the synthetic rows that are passkey rows (data/passkey.ts); default 0 */
  syntheticPasskey?: number;
  /** share of the synthetic rows that are first-sentence rows (data/first-sentence.ts); default 0 */
  syntheticFirstSentence?: number;
  /** what the final model's weights are stored as (default: float32 for pretrain, the base's dtype for extend) */
  dtype?: WeightDtype;
}

export interface PretrainOptions extends CommonOptions {
  preset: string;
  data: string;
  ropeTheta?: number;
}

export interface ExtendOptions extends CommonOptions {
  from: string; // a run folder (uses RUN/model) or a model folder
  data?: string; // default: the base run's data
  rope: string; // rope | abf | pi | ntk | dynamic | yarn | llama3 | xpos | xpos-abf
  ropeTheta?: number; // ABF base, default 500,000 (the CLI's --rope-theta, as PretrainOptions.ropeTheta)
  factor?: number; // PI/NTK/YaRN/Llama 3 factor, default new length / old length
  scaleBase?: number; // xPos, default 512
}

export const PRETRAIN_LR = 1e-3;
export const EXTEND_LR_RATIO = 1 / 3; // extension LR as a share of pretraining's (paper: 2e-5 after 3e-4)
/** the paper's continual-pretraining peak for 7B/13B (§2.1): the default when extending a model folder that is not a longctx run */
export const PAPER_EXTEND_LR = 2e-5;

function refuseExisting(out: string): void {
  if (fs.existsSync(path.join(out, RESOLVED_CONFIG))) {
    throw new Error(`${out} already holds a run; continue it with --resume ${out}, or choose another --out`);
  }
}

/** A run on prepared text: pretraining from scratch or an extension of the model folder `from`. */
type TextRunConfig = PretrainRunConfig | ExtendRunConfig;

/** Everything about the run that does not depend on which recipe it is. */
function resolveRun(start: { kind: 'pretrain'; from: null } | { kind: 'extend'; from: string }, model: LlamaConfig, data: string, o: CommonOptions, baseLr: number, be: Backend, baseDtype: WeightDtype = 'float32'): TextRunConfig {
  const dtype = o.dtype ?? baseDtype;
  const schedule = parseSchedule(o.schedule);
  const synthetic = o.synthetic || o.syntheticFirst ? { share: o.synthetic ?? 0, ...(o.syntheticFirst ? { onlyBatches: o.syntheticFirst } : {}), ...(o.syntheticRecall ? { recall: o.syntheticRecall } : {}), ...(o.syntheticPasskey ? { passkey: o.syntheticPasskey } : {}), ...(o.syntheticFirstSentence ? { firstSentence: o.syntheticFirstSentence } : {}) } : undefined;
  checkSynthetic(synthetic, '--synthetic');
  const maxLen = Math.max(...schedule.map((e) => e.seqLen));
  const tokensPerStep = o.tokensPerStep ?? Math.max(8192, 4 * maxLen);
  const stages = planStages(schedule, o.tokens, tokensPerStep, model);
  const totalSteps = stages.reduce((n, s) => n + s.steps, 0);
  const budget = memoryBudget();
  const microBatch = stages.map((s) => {
    if (o.microBatch !== undefined) {
      if (s.batchSize % o.microBatch !== 0) throw new Error(`--micro-batch ${o.microBatch} must divide the batch of ${s.batchSize} sequences at length ${s.seqLen}`);
      return o.microBatch;
    }
    return chooseMicroBatch(model, s, budget);
  });
  const lr = o.lr ?? baseLr;
  return {
    version: 1, ...start, model, data: path.resolve(data), schedule, stages, tokens: o.tokens, tokensPerStep, microBatch,
    lr: { maxLr: lr, minLr: o.minLr ?? lr / 10, warmupSteps: o.warmup ?? Math.max(1, Math.round(0.05 * totalSteps)) },
    adam: llamaAdamW(), seed: o.seed, mix: o.mix,
    ...(synthetic ? { synthetic } : {}),
    evalEvery: o.evalEvery ?? Math.max(1, Math.round(totalSteps / 10)),
    evalLengths: o.evalLengths ?? [...new Set(schedule.map((e) => e.seqLen))],
    evalSequences: o.evalSequences,
    checkpointEvery: o.checkpointEvery ?? Math.max(1, Math.round(totalSteps / 10)),
    keepCheckpoints: o.keepCheckpoints, ...backendRecord(be),
    ...(dtype !== 'float32' ? { dtype } : {}),
  };
}

function startFresh(cfg: TextRunConfig, ds: Dataset, weights: Float32Array | null, be: Backend): TrainState {
  // allowed (sequences wrap around the documents), but rarely meant: say so before the hours go
  const longest = Math.max(...cfg.stages.map((s) => s.seqLen));
  if (longest > ds.train.totalTokens) {
    process.stderr.write(`note: sequences of ${longest} tokens are longer than all of ${ds.dir}'s training split (${ds.train.totalTokens.toLocaleString('en-US')} tokens): each one repeats the same text\n`);
  }
  const model = createModel(cfg.model, be, weights ? { weights } : {});
  if (!weights) initWeights(model, cfg.seed);
  const first = cfg.stages[0]!;
  return {
    model,
    opt: createOptimizerState(parameterCount(cfg.model), Float32Array, be),
    data: createBatchIterator(ds, { seqLen: first.seqLen, batchSize: first.batchSize, seed: cfg.seed, mix: cfg.mix, ...(cfg.synthetic ? { synthetic: cfg.synthetic } : {}) }),
    step: 0, tokens: 0, rng: new Rng(cfg.seed),
  };
}

/** A short-context base model from scratch on a prepared data folder. */
export async function pretrain(o: PretrainOptions, env: TrainEnv): Promise<TrainSummary> {
  refuseExisting(o.out);
  const ds = openDataset(o.data);
  const model = presetConfig(o.preset);
  model.vocab_size = ds.tokenizer.vocabSize;
  model.bos_token_id = ds.tokenizer.bosId;
  model.eos_token_id = ds.tokenizer.eosId;
  if (o.ropeTheta !== undefined) model.rope_theta = o.ropeTheta;
  model.max_position_embeddings = Math.max(...parseSchedule(o.schedule).map((e) => e.seqLen));
  const cfg = resolveRun({ kind: 'pretrain', from: null }, model, o.data, o, PRETRAIN_LR, env.backend);
  lockRun(o.out);
  writeRunConfig(o.out, cfg);
  return train(o.out, cfg, datasetTrainData(ds), startFresh(cfg, ds, null, env.backend), env);
}

/** The RoPE of the extended model: the paper's variants (§4.1) and their peers, as HF config fields. */
/** The old spelling would otherwise be ignored silently (and the model get 500,000). */
function refuseOldTheta(o: object): void {
  if ((o as { theta?: unknown }).theta !== undefined) throw new Error('ExtendOptions.theta is now ropeTheta (as PretrainOptions.ropeTheta)');
}

export function extendedRope(base: LlamaConfig, o: Pick<ExtendOptions, 'rope' | 'ropeTheta' | 'factor' | 'scaleBase'>, newLen: number): Pick<LlamaConfig, 'rope_theta' | 'rope_scaling'> {
  refuseOldTheta(o);
  const oldLen = base.max_position_embeddings;
  const factor = o.factor ?? Math.max(1, newLen / oldLen);
  const theta = o.ropeTheta ?? PAPER_GEOMETRY.abfTheta;
  const scaling = (raw: Record<string, unknown> | null): LlamaConfig['rope_scaling'] => parseRopeScaling(raw, base.head_dim, '--rope');
  switch (o.rope) {
    case 'rope': return { rope_theta: base.rope_theta, rope_scaling: base.rope_scaling };
    case 'abf': return { rope_theta: theta, rope_scaling: null };
    case 'pi': return { rope_theta: base.rope_theta, rope_scaling: scaling({ rope_type: 'linear', factor }) };
    case 'ntk': return { rope_theta: base.rope_theta, rope_scaling: scaling({ rope_type: 'ntk', factor }) };
    case 'dynamic': return { rope_theta: base.rope_theta, rope_scaling: scaling({ rope_type: 'dynamic', factor, original_max_position_embeddings: oldLen }) };
    case 'yarn': return { rope_theta: base.rope_theta, rope_scaling: scaling({ rope_type: 'yarn', factor, original_max_position_embeddings: oldLen }) };
    case 'llama3': return {
      rope_theta: base.rope_theta,
      rope_scaling: scaling({ rope_type: 'llama3', factor, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: oldLen }),
    };
    case 'xpos': return { rope_theta: base.rope_theta, rope_scaling: scaling({ rope_type: 'xpos', scale_base: o.scaleBase ?? 512 }) };
    case 'xpos-abf': return { rope_theta: theta, rope_scaling: scaling({ rope_type: 'xpos', scale_base: o.scaleBase ?? 512 }) };
    default:
      throw new Error(`--rope must be one of rope, abf, pi, ntk, dynamic, yarn, llama3, xpos, xpos-abf; got "${o.rope}"`);
  }
}

/** Continual pretraining to a longer context with a new RoPE (the paper's §2.1 / §4.1). */
export async function extend(o: ExtendOptions, env: TrainEnv): Promise<TrainSummary> {
  refuseOldTheta(o);
  refuseExisting(o.out);
  const fromRun = fs.existsSync(path.join(o.from, RESOLVED_CONFIG)) ? readRunConfig(o.from) : null;
  const modelDir = fromRun ? path.join(o.from, FINAL_MODEL) : o.from;
  if (!isModelFolder(modelDir)) {
    throw new Error(`${modelDir} is not a model folder${fromRun ? ' (the base run has not finished: resume it first)' : ''}`);
  }
  const data = o.data ?? (fromRun && fromRun.kind !== 'instruct' ? fromRun.data : undefined);
  if (!data) throw new Error(`--data is needed: ${o.from} is a model folder, not a run that names its data`);
  const ds = openDataset(data);
  const base = openModelFolder(modelDir);
  if (base.config.vocab_size !== ds.tokenizer.vocabSize) {
    throw new Error(`${modelDir} has vocab_size ${base.config.vocab_size} but ${data} was tokenized with ${ds.tokenizer.vocabSize} tokens; use the data folder the base model was trained on`);
  }
  const weights = base.loadWeights();
  const newLen = Math.max(...parseSchedule(o.schedule).map((e) => e.seqLen));
  const model: LlamaConfig = { ...base.config, ...extendedRope(base.config, o, newLen), max_position_embeddings: newLen };
  const tokensPerStep = o.tokensPerStep ?? fromRun?.tokensPerStep; // the paper keeps tokens per step
  // a longctx run's own peak / 3 (its schedule's scale); any other model (Llama 2 from the Hub): the paper's 2e-5
  const baseLr = fromRun ? fromRun.lr.maxLr * EXTEND_LR_RATIO : PAPER_EXTEND_LR;
  // the extended model comes out as the base was stored (a BF16 Llama 2 stays BF16), unless --dtype says otherwise
  const cfg = resolveRun({ kind: 'extend', from: path.resolve(modelDir) }, model, data, { ...o, tokensPerStep, evalLengths: o.evalLengths ?? evalLengthsFor(base.config, o.schedule) }, baseLr, env.backend, folderDtype(modelDir, base.config));
  lockRun(o.out);
  writeRunConfig(o.out, cfg);

  writeBaseEval(o.out, modelDir, base.config, weights, ds, cfg, env.backend);
  return train(o.out, cfg, withFiles(datasetTrainData(ds), baseFiles(modelDir, newLen)), startFresh(cfg, ds, weights, env.backend), env);
}

/**
 * What the extended model keeps of its base folder: tokenizer_config.json (chat template, special
 * tokens; model_max_length raised to the new length), special_tokens_map.json, generation_config.json
 * (max_length raised likewise).
 */
function baseFiles(modelDir: string, newLen: number): Record<string, string> {
  const files = carriedFiles(modelDir);
  // the lengths they state are the base's: raised to the new one (transformers' generate() caps at max_length)
  const raise = (name: string, key: string): void => {
    const text = files[name];
    if (text === undefined) return;
    const j = JSON.parse(text) as Record<string, unknown>;
    if (typeof j[key] === 'number') files[name] = JSON.stringify({ ...j, [key]: newLen }, null, 2) + '\n';
  };
  raise('tokenizer_config.json', 'model_max_length');
  raise('generation_config.json', 'max_length');
  return files;
}

/** The base model as it was (its own RoPE) on the extension's held-out sequences: the line to beat. */
function writeBaseEval(out: string, modelDir: string, baseConfig: LlamaConfig, weights: Float32Array, ds: Dataset, cfg: TextRunConfig, be: Backend): void {
  const baseModel = createModel(baseConfig, be, { weights });
  const sets = new Map(cfg.evalLengths.map((T) => [T, evalBatches(ds, T, cfg.evalSequences)] as const));
  const baseVal = validate(baseModel, sets);
  writeFileAtomic(path.join(out, 'base_eval.json'), JSON.stringify({
    model: modelDir, rope: describeRope(ropeParamsOf(baseConfig)),
    val_loss: Object.fromEntries([...baseVal].map(([T, l]) => [String(T), l])),
  }, null, 2) + '\n');
}

/** Validation lengths of an extension: the base length and every length of the new schedule. */
function evalLengthsFor(base: LlamaConfig, schedule: string): number[] {
  return [...new Set([base.max_position_embeddings, ...parseSchedule(schedule).map((e) => e.seqLen)])].sort((a, b) => a - b);
}

/** Continue a run from its last checkpoint with the same data order and RNG state. */
export async function resume(runDir: string, env: TrainEnv, change: { lr?: number } = {}): Promise<TrainSummary> {
  const cfg = readRunConfig(runDir);
  const io = withRunPrecision(cfg, env);
  const moved = backendChange(cfg, io.backend);
  if (moved && !io.json) process.stderr.write(`${runDir}: ${moved}\n`);
  if (cfg.kind === 'instruct') throw new Error(`${runDir} is an instruction-tuning run; continue it with longctx instruct train --resume ${runDir}`);
  lockRun(runDir);
  const finished = finishedSummary(runDir, cfg);
  if (finished) {
    // resuming a finished run must not rewrite its results (repro and reports read them)
    if (!io.json) process.stderr.write(`${runDir}: finished at step ${finished.steps}; nothing to resume\n`);
    unlockRun(runDir);
    return finished;
  }
  const ckpt = latestCheckpoint(runDir);
  if (!ckpt) {
    if (change.lr !== undefined) changePeakLr(runDir, cfg, 0, change.lr, io);
    return restart(runDir, cfg, io);
  }
  const ds = openDataset(cfg.data);
  const { model, opt, state } = loadCheckpoint(ckpt, io.backend);
  if (change.lr !== undefined) changePeakLr(runDir, cfg, state.step, change.lr, io);
  truncateMetrics(runDir, state.step);
  const data = restoreBatchIterator(ds, state.data as BatchIteratorState);
  // the files the run carries from its base (tokenizer_config.json, ...) are in every checkpoint
  return train(runDir, cfg, withFiles(datasetTrainData(ds), carriedFiles(ckpt)), { model, opt, data, step: state.step, tokens: state.tokens, rng: Rng.fromState(state.rng), seconds: state.seconds ?? 0 }, io);
}

/**
 * A run killed before its first checkpoint: start it again from its recorded settings (the
 * settings, not the command line, define the run), so neither --resume nor a fresh run is stuck.
 */
async function restart(runDir: string, cfg: TextRunConfig, io: TrainEnv): Promise<TrainSummary> {
  if (!io.json) process.stderr.write(`${runDir}: no checkpoint yet; starting the run again from its recorded settings\n`);
  const ds = openDataset(cfg.data);
  truncateMetrics(runDir, -1);
  let weights: Float32Array | null = null;
  if (cfg.kind === 'extend') {
    if (!cfg.from || !isModelFolder(cfg.from)) throw new Error(`${runDir}: the base model ${cfg.from} it extends is gone; start a new run`);
    const base = openModelFolder(cfg.from);
    weights = base.loadWeights();
    if (!fs.existsSync(path.join(runDir, 'base_eval.json'))) writeBaseEval(runDir, cfg.from, base.config, weights, ds, cfg, io.backend);
  }
  const files = cfg.kind === 'extend' ? baseFiles(cfg.from, cfg.model.max_position_embeddings) : {};
  return train(runDir, cfg, withFiles(datasetTrainData(ds), files), startFresh(cfg, ds, weights, io.backend), io);
}

function withFiles(d: TrainData, files: Record<string, string>): TrainData {
  return { ...d, files: { ...d.files, ...files } };
}

