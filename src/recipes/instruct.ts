// Instruction tuning (paper §2.2, §4.3): supervised fine-tuning of a (long-context) model on
// self-instructed long-document QA plus optional short chat data, with the loss on answers only or,
// as Table 9 found better, on answers and long inputs. Reads top to bottom: resolve the model and
// the data, build the sequences, plan the run, write the configuration, hand everything to the
// training loop shared with pretrain/extend (train/trainer.ts). The run folder has the same layout;
// conversations are built in the base model's chat format (its tokenizer_config.json's Jinja template,
// else Llama 2's), and the final model's tokenizer_config.json carries the template it was trained in.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LlamaConfig, WeightDtype } from '../model/config.js';
import { createModel, forward } from '../model/llama.js';
import { parameterCount } from '../model/params.js';
import { carriedFiles, folderDtype, isModelFolder, openModelFolder } from '../io/hf.js';
import { loadTokenizer, readTokenizerConfig, tokenizerConfigObject } from '../data/tokenizer/load.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { createOptimizerState, llamaAdamW } from '../train/adamw.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import { planStages } from '../train/curriculum.js';
import {
  backendChange, backendRecord, changePeakLr, finishedSummary, withRunPrecision, latestCheckpoint, lockRun, unlockRun, readMetrics, readRunConfig, truncateMetrics, writeRunConfig, FINAL_MODEL, RESOLVED_CONFIG, type InstructRunInfo, type RunConfig,
} from '../train/run.js';
import { chooseMicroBatch, memoryBudget, tokenizerFiles, train, type TrainData, type TrainEnv, type TrainSummary } from '../train/trainer.js';
import { LLAMA2_CHAT_TEMPLATE, chatFormat, type ChatFormat } from '../data/chat-template.js';
import { buildInstructData, type BuiltData, type BuildCounts } from '../instruct/build.js';
import { createSequenceIterator, restoreSequenceIterator, type SequenceIteratorState } from '../instruct/batches.js';
import { sha256, sidecarPaths } from '../instruct/generate.js';
import { Rng } from '../util/rng.js';
import { readManifest } from '../data/prepare.js';
import { writeFileAtomic } from '../util/atomic.js';

export interface InstructTrainOptions {
  /** a run folder (its model/) or a model folder with tokenizer.json */
  from: string;
  /** self-instruct JSONL files (instruct generate --out) */
  data: string[];
  /** short chat JSONL files ({"messages": [...]}) */
  chat: string[];
  out: string;
  /** LM loss on the long inputs too (paper Table 9), not only on answers */
  lossOnInput: boolean;
  /** Table 9's "+ pretrain data mix": a prepared data folder whose training split gives plain LM sequences */
  pretrainData?: string;
  /** the share of training sequences drawn from pretrainData (default PRETRAIN_SHARE) */
  pretrainShare?: number;
  /** T (default the model's max_position_embeddings) */
  seqLen?: number;
  /** sequences per optimizer step */
  batchSize: number;
  /** passes over the training sequences (default 2, Llama 2's SFT) */
  epochs?: number;
  /** optimizer steps (instead of epochs) */
  steps?: number;
  lr?: number;
  minLr?: number;
  warmup?: number;
  seed: number;
  /** share of the pairs held out, whole documents (default VAL_FRACTION; 0 with valData) */
  valFraction?: number;
  /** self-instruct files to validate on instead (their pairs are never trained on) */
  valData?: string[];
  evalEvery?: number;
  /** validation sequences (default all, at most 64) */
  evalSequences?: number;
  checkpointEvery?: number;
  keepCheckpoints: number;
  /** what the final model's weights are stored as (default: the base's) */
  dtype?: WeightDtype;
  microBatch?: number;
}

/** Llama 2's SFT learning rate: the default when --from is a model folder with no run to take one from. */
export const SFT_LR = 2e-5;
export const SFT_EPOCHS = 2;
export const VAL_FRACTION = 0.1;
/** Share of pretraining sequences with --pretrain-data (ours: the paper does not give its mix). */
export const PRETRAIN_SHARE = 0.1;

export interface InstructSummary extends TrainSummary {
  /** mean loss over the validation answers before the first step and after the last evaluation */
  answerLoss: { before: number | null; after: number | null; split: BuiltData['valSplit'] };
  counts: BuildCounts;
}

/** RUN/answer_losses.json: the final model's answer loss per held-out sequence, for comparisons paired by sequence. */
export const ANSWER_LOSSES = 'answer_losses.json';

/**
 * The finished run's model on each validation sequence of the run (the ones its evaluations average):
 * mean loss over that sequence's scored (answer) tokens. Written to RUN/answer_losses.json.
 */
function writeAnswerLosses(runDir: string, cfg: RunConfig, built: BuiltData, be: TrainEnv['backend']): void {
  const dir = path.join(runDir, FINAL_MODEL);
  if (!isModelFolder(dir) || cfg.evalLengths.length === 0) return;
  const folder = openModelFolder(dir);
  const m = createModel(folder.config, be, { weights: folder.loadWeights() });
  const T = cfg.schedule[0]!.seqLen;
  const count = Math.min(cfg.evalSequences, built.val.length);
  const losses: number[] = [];
  for (let i = 0; i < count; i++) losses.push(forward(m, built.val[i]!.tokens, built.val[i]!.targets, 1, T));
  writeFileAtomic(path.join(runDir, ANSWER_LOSSES), JSON.stringify({ sequences: count, losses }) + '\n');
}

/**
 * A finished instruction-tuning run's per-sequence answer losses: RUN/answer_losses.json, computed
 * first when the run predates it (its data is rebuilt from the recorded, checksummed files).
 */
export function answerLossesOf(runDir: string, be: TrainEnv['backend']): number[] {
  const file = path.join(runDir, ANSWER_LOSSES);
  if (!fs.existsSync(file)) {
    const cfg = readRunConfig(runDir);
    if (cfg.kind !== 'instruct' || !cfg.instruct) throw new Error(`${runDir} is not an instruction-tuning run`);
    const tok = loadTokenizer(path.join(runDir, FINAL_MODEL));
    writeAnswerLosses(runDir, cfg, build(tok, cfg.instruct, cfg.schedule[0]!.seqLen, cfg.seed, formatOf(tok, path.join(runDir, FINAL_MODEL)).format), be);
  }
  if (!fs.existsSync(file)) return []; // a run without validation sequences
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { losses: number[] }).losses;
}

function fileSha(file: string): string {
  return sha256(fs.readFileSync(file, 'utf8'));
}

/**
 * The tokenizer files of the tuned model: tokenizer.json and the base's tokenizer_config.json (its
 * chat template, special tokens and the rest, as they were), else ours with the Llama 2 chat template
 * the model was tuned in.
 */
function chatTokenizerFiles(tok: Tokenizer, T: number, base: Record<string, unknown> | null, carried: Record<string, string>): TrainData['files'] {
  return { ...carried, ...tokenizerFiles(tok, { ...tokenizerConfigObject(tok), ...(base ?? {}), model_max_length: T, chat_template: base?.chat_template ?? LLAMA2_CHAT_TEMPLATE }) };
}

/** The chat format of the model in `dir` (its tokenizer_config.json's template, else Llama 2's) and that config. */
function formatOf(tok: Tokenizer, dir: string): { format: ChatFormat; config: Record<string, unknown> | null; carried: Record<string, string> } {
  const config = readTokenizerConfig(dir);
  // special_tokens_map.json and generation_config.json go along with the tuned model too
  const { 'tokenizer_config.json': _tc, ...carried } = carriedFiles(dir);
  return { format: chatFormat(tok, config, path.join(dir, 'tokenizer_config.json')), config, carried };
}

function trainData(built: BuiltData, tok: Tokenizer, T: number, chat: { config: Record<string, unknown> | null; carried: Record<string, string> }): TrainData {
  return {
    files: chatTokenizerFiles(tok, T, chat.config, chat.carried),
    evalSet: (len, n) => {
      if (len !== T) throw new Error(`instruction validation sequences are built at length ${T}, not ${len}`);
      const count = Math.min(n, built.val.length);
      const tokens = new Int32Array(count * T); // (count, T)
      const targets = new Int32Array(count * T); // (count, T)
      for (let i = 0; i < count; i++) {
        tokens.set(built.val[i]!.tokens, i * T);
        targets.set(built.val[i]!.targets, i * T);
      }
      return { tokens, targets, count };
    },
  };
}

function build(tok: Tokenizer, info: Pick<InstructRunInfo, 'data' | 'chat' | 'lossOnInput' | 'valFraction' | 'valData' | 'pretrain'>, T: number, seed: number, format: ChatFormat): BuiltData {
  return buildInstructData(tok, {
    format,
    data: info.data.map((d) => d.file), chat: info.chat.map((c) => c.file), seqLen: T, lossOnInput: info.lossOnInput, valFraction: info.valFraction, seed,
    ...(info.valData ? { valData: info.valData.map((d) => d.file) } : {}),
    ...(info.pretrain ? { pretrain: { dir: info.pretrain.dir, share: info.pretrain.share } } : {}),
  });
}

/** The pretraining data's identity: its manifest key (changes when the data is prepared differently). */
function pretrainKey(dir: string): string {
  const m = readManifest(dir);
  if (!m) throw new Error(`--pretrain-data ${dir}: no manifest.json; give a folder written by longctx data prepare`);
  return m.key;
}

/** Answer loss before (the step-0 evaluation) and after (the last one) from the run's metrics. */
function answerLoss(runDir: string, split: BuiltData['valSplit']): InstructSummary['answerLoss'] {
  const evals = readMetrics(runDir).filter((m) => m.type === 'eval');
  const first = evals.find((m) => m.step === 0);
  const last = evals[evals.length - 1];
  return { before: first?.val_loss ?? null, after: last && last.step > 0 ? last.val_loss : null, split };
}

/** Supervised fine-tuning on instruction data; see the top of the file. */
export async function instructTrain(o: InstructTrainOptions, io: TrainEnv): Promise<InstructSummary> {
  if (fs.existsSync(path.join(o.out, RESOLVED_CONFIG))) {
    throw new Error(`${o.out} already holds a run; continue it with longctx instruct train --resume ${o.out}, or choose another --out`);
  }
  const fromRun = fs.existsSync(path.join(o.from, RESOLVED_CONFIG)) ? readRunConfig(o.from) : null;
  const modelDir = fromRun ? path.join(o.from, FINAL_MODEL) : o.from;
  if (!isModelFolder(modelDir)) throw new Error(`${modelDir} is not a model folder${fromRun ? ' (the run has not finished: resume it first)' : ''}`);
  if (!fs.existsSync(path.join(modelDir, 'tokenizer.json'))) throw new Error(`${modelDir}: no tokenizer.json; instruction data is tokenized with the model's own tokenizer (a run folder's model/ has one)`);
  const base = openModelFolder(modelDir);
  const tok = loadTokenizer(modelDir);
  if (tok.vocabSize > base.config.vocab_size) throw new Error(`${modelDir}: tokenizer.json has ${tok.vocabSize} ids but vocab_size is ${base.config.vocab_size}`);
  const model: LlamaConfig = base.config;
  const T = o.seqLen ?? model.max_position_embeddings;
  if (T > model.max_position_embeddings) {
    throw new Error(`--seq-len ${T} is longer than the model's context of ${model.max_position_embeddings} (max_position_embeddings); extend it first (longctx extend) or lower --seq-len`);
  }
  if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1)) throw new Error(`--batch-size must be an integer >= 1, got ${o.batchSize}`);

  // The data: files recorded with their sha256 (resume refuses changed files), then built.
  const pairFiles = (flag: string, files: string[]): InstructRunInfo['data'] => files.map((f) => {
    if (!fs.existsSync(f)) throw new Error(`${flag} ${f}: no such file (write one with longctx instruct generate --out ${f})`);
    const docs = sidecarPaths(f).docs;
    return { file: path.resolve(f), sha256: fileSha(f), docs: path.resolve(docs), docsSha256: fs.existsSync(docs) ? fileSha(docs) : '' };
  });
  const info: InstructRunInfo = {
    data: pairFiles('--pairs', o.data),
    chat: o.chat.map((f) => {
      if (!fs.existsSync(f)) throw new Error(`--chat ${f}: no such file`);
      return { file: path.resolve(f), sha256: fileSha(f) };
    }),
    lossOnInput: o.lossOnInput, valFraction: o.valFraction ?? (o.valData && o.valData.length > 0 ? 0 : VAL_FRACTION), epochs: o.epochs ?? SFT_EPOCHS, fingerprint: '', counts: {},
  };
  if (o.valData && o.valData.length > 0) info.valData = pairFiles('--val-pairs', o.valData);
  if (o.pretrainData !== undefined) {
    const share = o.pretrainShare ?? PRETRAIN_SHARE;
    if (!(share > 0 && share < 1)) throw new Error(`--pretrain-share must be in (0, 1), got ${share}`);
    info.pretrain = { dir: path.resolve(o.pretrainData), key: pretrainKey(o.pretrainData), share };
  } else if (o.pretrainShare !== undefined) {
    throw new Error('--pretrain-share needs --pretrain-data (a folder written by longctx data prepare)');
  }
  // the base's chat format: its tokenizer_config.json's template (Llama 3, ChatML, ...), else Llama 2's
  const chat = formatOf(tok, modelDir);
  const built = build(tok, info, T, o.seed, chat.format);
  info.fingerprint = built.fingerprint;
  info.counts = { ...built.counts, trainSequences: built.train.length, valSequences: built.val.length };

  // The plan: one stage at T, B sequences per step, enough steps for the epochs.
  const B = o.batchSize;
  const tokensPerStep = B * T;
  const steps = o.steps ?? Math.max(1, Math.ceil((info.epochs * built.train.length) / B));
  const stages = planStages([{ seqLen: T, share: 1 }], steps * tokensPerStep, tokensPerStep, model);
  let microBatch: number;
  if (o.microBatch !== undefined) {
    if (B % o.microBatch !== 0) throw new Error(`--micro-batch ${o.microBatch} must divide --batch-size ${B}`);
    microBatch = o.microBatch;
  } else {
    microBatch = chooseMicroBatch(model, stages[0]!, memoryBudget());
  }
  const lr = o.lr ?? fromRun?.lr.maxLr ?? SFT_LR;
  const evalSequences = Math.min(built.val.length, o.evalSequences ?? 64);
  const dtype = o.dtype ?? folderDtype(modelDir, base.config); // the final weights as the base stores them, unless asked
  const cfg: RunConfig = {
    version: 1, kind: 'instruct', model, from: path.resolve(modelDir),
    schedule: [{ seqLen: T, share: 1 }], stages, tokens: steps * tokensPerStep, tokensPerStep, microBatch: [microBatch],
    lr: { maxLr: lr, minLr: o.minLr ?? lr / 10, warmupSteps: o.warmup ?? Math.max(1, Math.round(0.05 * steps)) },
    adam: llamaAdamW(), seed: o.seed,
    evalEvery: o.evalEvery ?? Math.max(1, Math.round(steps / 10)),
    evalLengths: evalSequences > 0 ? [T] : [], evalSequences: Math.max(1, evalSequences),
    checkpointEvery: o.checkpointEvery ?? Math.max(1, Math.round(steps / 10)),
    keepCheckpoints: o.keepCheckpoints, ...backendRecord(io.backend), instruct: info,
    ...(dtype !== 'float32' ? { dtype } : {}),
  };
  lockRun(o.out);
  writeRunConfig(o.out, cfg);

  const m = createModel(model, io.backend, { weights: base.loadWeights() });
  const data = createSequenceIterator(built.train, { seqLen: T, batchSize: B, seed: o.seed, fingerprint: built.fingerprint });
  const s = await train(o.out, cfg, trainData(built, tok, T, chat), {
    model: m, opt: createOptimizerState(parameterCount(model), Float32Array, io.backend), data, step: 0, tokens: 0, rng: new Rng(o.seed),
  }, io);
  if (!s.interrupted) writeAnswerLosses(o.out, cfg, built, io.backend);
  return { ...s, answerLoss: answerLoss(o.out, built.valSplit), counts: built.counts };
}

/** Continue an instruction-tuning run from its last checkpoint: same data (checked), same batches. */
export async function resumeInstruct(runDir: string, env: TrainEnv, change: { lr?: number } = {}): Promise<InstructSummary> {
  const cfg = readRunConfig(runDir);
  const io = withRunPrecision(cfg, env);
  if (cfg.kind !== 'instruct' || !cfg.instruct) throw new Error(`${runDir} is a ${cfg.kind} run; continue it with longctx ${cfg.kind} --resume ${runDir}`);
  lockRun(runDir);
  const info = cfg.instruct;
  for (const d of [...info.data, ...(info.valData ?? [])]) {
    if (!fs.existsSync(d.file) || fileSha(d.file) !== d.sha256) throw new Error(`${d.file}: missing or changed since the run started; resuming needs the same --pairs (or start a new run)`);
    if (d.docsSha256 && (!fs.existsSync(d.docs) || fileSha(d.docs) !== d.docsSha256)) throw new Error(`${d.docs}: missing or changed since the run started; resuming needs the same documents`);
  }
  for (const c of info.chat) {
    if (!fs.existsSync(c.file) || fileSha(c.file) !== c.sha256) throw new Error(`${c.file}: missing or changed since the run started; resuming needs the same --chat`);
  }
  if (info.pretrain && (!fs.existsSync(info.pretrain.dir) || pretrainKey(info.pretrain.dir) !== info.pretrain.key)) {
    throw new Error(`${info.pretrain.dir}: missing or prepared differently since the run started; resuming needs the same --pretrain-data`);
  }
  const finished = finishedSummary(runDir, cfg);
  if (finished) {
    // resuming a finished run must not rewrite its model or results (as pretrain's resume)
    if (!io.json) process.stderr.write(`${runDir}: finished at step ${finished.steps}; nothing to resume\n`);
    const tok = loadTokenizer(path.join(runDir, FINAL_MODEL));
    const built = build(tok, info, cfg.schedule[0]!.seqLen, cfg.seed, formatOf(tok, path.join(runDir, FINAL_MODEL)).format);
    unlockRun(runDir);
    return { ...finished, answerLoss: answerLoss(runDir, built.valSplit), counts: built.counts };
  }
  const ckpt = latestCheckpoint(runDir);
  if (!ckpt) throw new Error(`${runDir} has no complete checkpoint yet; start it again (remove the folder) instead of resuming`);
  const tok = loadTokenizer(ckpt);
  const T = cfg.schedule[0]!.seqLen;
  const chat = formatOf(tok, ckpt); // the checkpoint carries the tokenizer_config.json the run began with
  const built = build(tok, info, T, cfg.seed, chat.format);
  const moved = backendChange(cfg, io.backend);
  if (moved && !io.json) process.stderr.write(`${runDir}: ${moved}\n`);
  const { model, opt, state } = loadCheckpoint(ckpt, io.backend);
  if (change.lr !== undefined) changePeakLr(runDir, cfg, state.step, change.lr, io);
  truncateMetrics(runDir, state.step);
  const data = restoreSequenceIterator(built.train, state.data as SequenceIteratorState, built.fingerprint);
  const s = await train(runDir, cfg, trainData(built, tok, T, chat), { model, opt, data, step: state.step, tokens: state.tokens, rng: Rng.fromState(state.rng), seconds: state.seconds ?? 0 }, io);
  if (!s.interrupted) writeAnswerLosses(runDir, cfg, built, io.backend);
  return { ...s, answerLoss: answerLoss(runDir, built.valSplit), counts: built.counts };
}
