// A run folder: everything one training run writes, so it can be inspected, compared and resumed.
//
//   RUN/config.resolved.json   the complete, validated configuration (what resume re-reads)
//   RUN/metrics.jsonl          one JSON object per line: train steps, evaluations, stage changes
//   RUN/checkpoints/step-NNNNNNNN/   model folder + optimizer + trainer state (atomic)
//   RUN/checkpoints/latest     name of the newest complete checkpoint (written after it, atomically)
//   RUN/model/                 the final Hugging Face model folder, with tokenizer.json
//   RUN/summary.json           final figures

import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { lockFolder, unlockFolder } from '../util/lock.js';
import { parseLlamaConfig, WEIGHT_DTYPES, type LlamaConfig, type WeightDtype } from '../model/config.js';
import { describeBackend, PRECISIONS, type Backend, type Precision } from '../kernels/backend.js';
import type { AdamWConfig } from './adamw.js';
import type { TrainSummary } from './trainer.js';
import type { ScheduleEntry, Stage } from './curriculum.js';
import type { MixOptions } from '../data/mix.js';
import { checkSynthetic, type SyntheticOptions } from '../data/synthetic.js';

/** What an instruction-tuning run (longctx instruct train) trained on; see recipes/instruct.ts. */
export interface InstructRunInfo {
  /** self-instruct JSONL files (longctx instruct generate) with their sha256, checked on resume */
  data: { file: string; sha256: string; docs: string; docsSha256: string }[];
  /** short chat JSONL files ({"messages": [...]}) with their sha256 */
  chat: { file: string; sha256: string }[];
  /** LM loss on the long inputs too (paper Table 9), not only on answers */
  lossOnInput: boolean;
  valFraction: number;
  /** --val-data: self-instruct files whose pairs are the validation set, with their sha256 */
  valData?: { file: string; sha256: string; docs: string; docsSha256: string }[];
  epochs: number;
  /** Table 9's "+ pretrain data mix": the prepared data folder (its manifest key, checked on resume) and the share of training sequences from it */
  pretrain?: { dir: string; key: string; share: number };
  /** sha256 of the built training sequences: resume refuses data that builds differently */
  fingerprint: string;
  /** what the builder made and dropped */
  counts: Record<string, number>;
}

/** What every run records, whatever its kind. */
interface RunConfigCommon {
  version: 1;
  model: LlamaConfig; // the model being trained (for extend: with the new RoPE)
  schedule: ScheduleEntry[];
  stages: Stage[]; // resolved from schedule, tokens and tokensPerStep
  tokens: number;
  tokensPerStep: number;
  microBatch: number[]; // per stage: sequences per forward/backward (gradient accumulation below batchSize)
  lr: { maxLr: number; minLr: number; warmupSteps: number };
  /** --resume --lr: the peak learning rate changed from `step` on (the schedule above is the current one) */
  lrChanges?: { step: number; maxLr: number; minLr: number }[];
  adam: AdamWConfig;
  seed: number;
  evalEvery: number; // optimizer steps between validations
  evalLengths: number[];
  evalSequences: number; // held-out sequences per length
  checkpointEvery: number;
  keepCheckpoints: number;
  /** what the final model's weights are stored as (checkpoints stay float32); absent: float32 */
  dtype?: WeightDtype;
  /** the kernels the run began on; isa and threads fix the reduction order (absent in runs of longctx before 0.1: unknown) */
  backend: string;
  isa?: string;
  threads?: number;
  /** what the matmuls computed in (--precision); absent: fp32. A resume keeps it, whatever the command line says. */
  precision?: Precision;
}

/** A run on prepared text (data prepare): its folder, mix and synthetic rows. */
interface TextRunFields {
  data: string; // prepared data folder
  mix: MixOptions;
  /** a share of rows replaced by repeated training spans (data/synthetic.ts; a deviation from the paper); absent: none */
  synthetic?: SyntheticOptions;
}

/** `longctx pretrain`: from scratch. */
export interface PretrainRunConfig extends RunConfigCommon, TextRunFields { kind: 'pretrain'; from: null }
/** `longctx extend`: continual pretraining of the model folder `from`. */
export interface ExtendRunConfig extends RunConfigCommon, TextRunFields { kind: 'extend'; from: string }
/** `longctx instruct train`: fine-tuning of the model folder `from` on the recorded instruction data. */
export interface InstructRunConfig extends RunConfigCommon { kind: 'instruct'; from: string; instruct: InstructRunInfo }

export type RunConfig = PretrainRunConfig | ExtendRunConfig | InstructRunConfig;

export const RESOLVED_CONFIG = 'config.resolved.json';
export const METRICS = 'metrics.jsonl';
export const CHECKPOINTS = 'checkpoints';
export const LATEST = 'latest';
export const FINAL_MODEL = 'model';
export const SUMMARY = 'summary.json';
export { LOCK } from '../util/lock.js';

/**
 * One writer per run folder (util/lock.ts): a --resume started while the run still trains is
 * refused instead of interleaving metrics.jsonl and racing on the checkpoints. train() releases the
 * lock when it returns, and the process when it exits.
 */
export function lockRun(dir: string): void {
  lockFolder(dir, (pid) => `another process (pid ${pid}) is writing this run; wait for it to finish or stop it (Ctrl-C checkpoints it), then --resume`);
}

/** Releases the lock if this process holds it. */
export function unlockRun(dir: string): void {
  unlockFolder(dir);
}

export function writeRunConfig(dir: string, cfg: RunConfig): void {
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, RESOLVED_CONFIG), JSON.stringify(cfg, null, 2) + '\n');
}

/**
 * A new peak learning rate from `step` on (what the NaN-loss advice asks for): the cosine's shape and
 * the floor's ratio kept, recorded in the run (`lr`, `lrChanges`) so that a later resume keeps it.
 */
export function changePeakLr(dir: string, cfg: RunConfig, step: number, lr: number, io: { json: boolean }): void {
  if (!(lr > 0)) throw new Error(`--lr must be positive to resume, got ${lr}`);
  const minLr = cfg.lr.maxLr > 0 ? cfg.lr.minLr * lr / cfg.lr.maxLr : lr / 10;
  cfg.lr = { ...cfg.lr, maxLr: lr, minLr };
  cfg.lrChanges = [...(cfg.lrChanges ?? []), { step, maxLr: lr, minLr }];
  writeRunConfig(dir, cfg);
  if (!io.json) process.stderr.write(`${dir}: peak learning rate ${lr} from step ${step} on (recorded in ${RESOLVED_CONFIG})\n`);
}

export function readRunConfig(dir: string): RunConfig {
  const file = path.join(dir, RESOLVED_CONFIG);
  if (!fs.existsSync(file)) throw new Error(`${file} not found: ${dir} is not a longctx run folder (give the --out folder of a pretrain or extend run)`);
  try {
    const cfg = JSON.parse(fs.readFileSync(file, 'utf8')) as RunConfig;
    if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new Error('not a JSON object');
    if (cfg.version !== 1) throw new Error(`unsupported version ${String(cfg.version)}`);
    checkRunConfigFields(cfg);
    return cfg;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message.split('\n')[0]}; the run cannot be resumed`);
  }
}

/** The fields a resume acts on, by type and by run kind: a wrong one is an error naming it, not a crash deep in training. */
function checkRunConfigFields(cfg: RunConfig): void {
  const raw = cfg as unknown as Record<string, unknown>;
  const at = (field: string): unknown => field.split(/[.[\]]+/).filter((k) => k !== '').reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined), raw);
  const bad = (field: string, want: string): never => { throw new Error(`field "${field}" is ${JSON.stringify(at(field))?.slice(0, 80) ?? 'missing'}; expected ${want}`); };
  const count = (v: unknown, min = 0): boolean => Number.isSafeInteger(v) && (v as number) >= min;
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!['pretrain', 'extend', 'instruct'].includes(cfg.kind)) bad('kind', '"pretrain", "extend" or "instruct"');
  if (!isObj(cfg.model)) bad('model', 'a model config object');
  // the model's Hugging Face fields, checked as config.json is (our own additions aside)
  const { kept: _kept, eos_token_ids: _eos, ...hf } = cfg.model;
  parseLlamaConfig(hf, 'field "model"');
  if (!Array.isArray(cfg.stages) || cfg.stages.length === 0) bad('stages', 'a non-empty list');
  const num = (v: unknown, min = 0): boolean => typeof v === 'number' && Number.isFinite(v) && v >= min;
  cfg.stages.forEach((st, i) => {
    if (typeof st !== 'object' || st === null || !count(st.seqLen, 1) || !count(st.batchSize, 1) || !count(st.steps) || !count(st.firstStep)) bad(`stages[${i}]`, '{seqLen, batchSize, steps, firstStep} as integers');
    if (!num(st.flops)) bad(`stages[${i}].flops`, 'a non-negative number');
  });
  if (!Array.isArray(cfg.schedule) || cfg.schedule.length === 0 || !cfg.schedule.every((e) => isObj(e) && count(e.seqLen, 1) && num(e.share))) bad('schedule', 'a non-empty list of {seqLen, share}');
  for (const k of ['tokens', 'tokensPerStep', 'evalEvery', 'evalSequences', 'checkpointEvery', 'keepCheckpoints'] as const) if (!count(cfg[k], 1)) bad(k, 'a positive integer');
  if (!count(cfg.seed)) bad('seed', 'a non-negative integer');
  if (!Array.isArray(cfg.microBatch) || !cfg.microBatch.every((m) => count(m, 1))) bad('microBatch', 'a list of positive integers');
  if (!Array.isArray(cfg.evalLengths) || !cfg.evalLengths.every((t) => count(t, 1))) bad('evalLengths', 'a list of positive integers');
  if (!isObj(cfg.lr) || !num(cfg.lr.maxLr) || !num(cfg.lr.minLr) || !count(cfg.lr.warmupSteps)) bad('lr', '{maxLr, minLr, warmupSteps} with non-negative numbers');
  if (cfg.lrChanges !== undefined && !(Array.isArray(cfg.lrChanges) && cfg.lrChanges.every((c) => isObj(c) && count(c.step) && num(c.maxLr) && num(c.minLr)))) bad('lrChanges', 'a list of {step, maxLr, minLr}');
  if (!isObj(cfg.adam)) bad('adam', 'an AdamW config object');
  const a = cfg.adam;
  if (!(num(a.beta1) && a.beta1 < 1)) bad('adam.beta1', 'a number in [0, 1)');
  if (!(num(a.beta2) && a.beta2 < 1)) bad('adam.beta2', 'a number in [0, 1)');
  if (!(num(a.eps) && a.eps > 0)) bad('adam.eps', 'a positive number');
  if (!num(a.weightDecay)) bad('adam.weightDecay', 'a non-negative number');
  if (!num(a.gradClip)) bad('adam.gradClip', 'a non-negative number (0: no clipping)');
  if (typeof cfg.backend !== 'string') bad('backend', 'a backend name');
  if (cfg.dtype !== undefined && !WEIGHT_DTYPES.includes(cfg.dtype)) bad('dtype', WEIGHT_DTYPES.join(', '));
  if (cfg.isa !== undefined && typeof cfg.isa !== 'string') bad('isa', 'an instruction-set name');
  if (cfg.threads !== undefined && !count(cfg.threads, 1)) bad('threads', 'a positive integer');
  if (cfg.precision !== undefined && !PRECISIONS.includes(cfg.precision)) bad('precision', PRECISIONS.join(' or '));
  if (cfg.kind === 'instruct') {
    if (typeof cfg.from !== 'string') bad('from', 'the path of the model folder it tunes');
    const info = cfg.instruct as unknown;
    if (!isObj(info)) bad('instruct', 'the instruction data record ({data, chat, lossOnInput, fingerprint, ...})');
    const i = info as Record<string, unknown>;
    const files = (v: unknown): boolean => Array.isArray(v) && v.every((f) => isObj(f) && typeof f.file === 'string' && typeof f.sha256 === 'string');
    if (!files(i.data)) bad('instruct.data', 'a list of {file, sha256, docs, docsSha256}');
    if (!files(i.chat)) bad('instruct.chat', 'a list of {file, sha256}');
    if (i.valData !== undefined && !files(i.valData)) bad('instruct.valData', 'a list of {file, sha256, docs, docsSha256}');
    if (typeof i.lossOnInput !== 'boolean') bad('instruct.lossOnInput', 'true or false');
    if (typeof i.fingerprint !== 'string') bad('instruct.fingerprint', 'the sha256 of the built sequences');
    if (i.pretrain !== undefined && (!isObj(i.pretrain) || typeof i.pretrain.dir !== 'string' || typeof i.pretrain.key !== 'string')) bad('instruct.pretrain', '{dir, key, share}');
    return;
  }
  if (cfg.kind === 'extend' && typeof cfg.from !== 'string') bad('from', 'the path of the model folder it extends');
  if (cfg.kind === 'pretrain' && cfg.from !== null) bad('from', 'null (a pretraining run starts from scratch)');
  if (typeof cfg.data !== 'string') bad('data', 'the path of a prepared data folder');
  if (!isObj(cfg.mix)) bad('mix', 'a mix object ({} for none)');
  const m = cfg.mix;
  if (m.sourceWeights !== undefined && !(isObj(m.sourceWeights) && Object.values(m.sourceWeights).every((w) => num(w)))) bad('mix.sourceWeights', 'an object of non-negative numbers per source');
  if (m.upsampleLongerThan !== undefined && !count(m.upsampleLongerThan, 1)) bad('mix.upsampleLongerThan', 'a positive integer');
  if (m.upsampleFactor !== undefined && !num(m.upsampleFactor, 1)) bad('mix.upsampleFactor', 'a number >= 1');
  if (cfg.synthetic !== undefined) {
    if (!isObj(cfg.synthetic)) bad('synthetic', 'an object');
    checkSynthetic(cfg.synthetic);
  }
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

const isCheckpointName = (name: string): boolean => /^step-\d{8}$/.test(name);

/** The checkpoint folders of a run, oldest first. */
function checkpointsOf(dir: string): string[] {
  return fs.readdirSync(path.join(dir, CHECKPOINTS)).filter(isCheckpointName).sort();
}

/**
 * The newest complete checkpoint of a run, or null when none was written. `latest` is written only
 * after the checkpoint it names is complete, so one that names a missing or malformed checkpoint
 * was edited or damaged by hand: an error, never "no checkpoint" (which would restart the run over
 * the checkpoints still there).
 */
export function latestCheckpoint(dir: string): string | null {
  const file = path.join(dir, CHECKPOINTS, LATEST);
  if (!fs.existsSync(file)) return null;
  const name = fs.readFileSync(file, 'utf8').trim();
  const p = path.join(dir, CHECKPOINTS, name);
  if (isCheckpointName(name) && fs.existsSync(p)) return p;
  const there = checkpointsOf(dir);
  const what = isCheckpointName(name) ? `${name}, which is missing` : `${JSON.stringify(name.slice(0, 40))}, not a checkpoint name (step-NNNNNNNN)`;
  throw new Error(`${file} names ${what}; write the name of one that is there into it (${there.length ? there.join(', ') : 'none are'}), or remove ${path.join(dir, CHECKPOINTS)} to start the run again`);
}

export function markLatest(dir: string, name: string, keep: number): void {
  writeFileAtomic(path.join(dir, CHECKPOINTS, LATEST), name + '\n');
  // Older checkpoints beyond `keep` are removed only after `latest` points past them.
  const all = checkpointsOf(dir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) {
    if (old !== name) fs.rmSync(path.join(dir, CHECKPOINTS, old), { recursive: true, force: true });
  }
}

export type MetricLine =
  | { type: 'train'; step: number; tokens: number; seq_len: number; loss: number; lr: number; grad_norm: number; tokens_per_s: number; flops: number }
  | { type: 'eval'; step: number; tokens: number; seq_len: number; val_loss: number; val_ppl: number; sequences: number }
  | { type: 'stage'; step: number; seq_len: number; batch_size: number; micro_batch: number };

export function appendMetrics(dir: string, lines: MetricLine[]): void {
  if (lines.length === 0) return;
  fs.appendFileSync(path.join(dir, METRICS), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}

export function readMetrics(dir: string): MetricLine[] {
  const file = path.join(dir, METRICS);
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as MetricLine);
}

/**
 * On resume: keep the metric lines up to the checkpoint's step (train steps and evaluations <= step,
 * which were written before the checkpoint; stage marks < step, since a mark at the step itself is
 * written after it and the resumed run writes it again) so the resumed run appends a continuous
 * record, each line once. A line half-written by a killed process is dropped.
 */
export function truncateMetrics(dir: string, step: number): void {
  const file = path.join(dir, METRICS);
  if (!fs.existsSync(file)) return;
  const kept: string[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let m: MetricLine;
    try {
      m = JSON.parse(line) as MetricLine;
    } catch {
      continue;
    }
    if (m.step < step || (m.step === step && m.type !== 'stage')) kept.push(line);
  }
  writeFileAtomic(file, kept.length ? kept.join('\n') + '\n' : '');
}

/** The run's recorded precision on the kernels the resuming command chose. */
export function withRunPrecision<E extends { backend: Backend }>(cfg: Pick<RunConfig, 'precision'>, io: E): E {
  return { ...io, backend: io.backend.withPrecision(cfg.precision ?? 'fp32') };
}

/** config.resolved.json's record of the kernels a run starts on. */
export function backendRecord(be: Backend): Pick<RunConfig, 'backend' | 'isa' | 'threads' | 'precision'> {
  return { backend: be.name, isa: be.isa, threads: be.threads, ...(be.precision !== 'fp32' ? { precision: be.precision } : {}) };
}

/**
 * One line when a run continues on other kernels than it began on (another backend, ISA or thread
 * count changes the reduction order, so the continuation is not bit-for-bit the uninterrupted run's);
 * null when they are the same or the run did not record them.
 */
export function backendChange(cfg: Pick<RunConfig, 'backend' | 'isa' | 'threads' | 'precision'>, be: Pick<Backend, 'name' | 'isa' | 'threads'>): string | null {
  const known = cfg.isa !== undefined && cfg.threads !== undefined;
  if (cfg.backend === be.name && (!known || (cfg.isa === be.isa && cfg.threads === be.threads))) return null;
  const began = known ? describeBackend({ name: cfg.backend, isa: cfg.isa!, threads: cfg.threads! }) : `the ${cfg.backend} backend`;
  const bf16Tiles = (isa: string | undefined, name: string): boolean => name === 'native' && isa === 'avx512bf16';
  const attentionMoves = cfg.precision === 'bf16' && bf16Tiles(cfg.isa, cfg.backend) !== bf16Tiles(be.isa, be.name);
  return `began on ${began}, continues on ${describeBackend({ name: be.name, isa: be.isa, threads: be.threads })}: the result will differ from an uninterrupted run ` +
    (attentionMoves ? 'by bfloat16\'s rounding of attention (its products are bfloat16 on the avx512bf16 build only)' : 'in the last bits');
}

/** The run's summary when it finished every step and wrote its final model; null otherwise. */
export function finishedSummary(runDir: string, cfg: Pick<RunConfig, 'stages'>): TrainSummary | null {
  const file = path.join(runDir, SUMMARY);
  if (!fs.existsSync(file) || !fs.existsSync(path.join(runDir, FINAL_MODEL))) return null;
  let s: TrainSummary;
  try {
    s = JSON.parse(fs.readFileSync(file, 'utf8')) as TrainSummary;
  } catch {
    return null; // a damaged summary: resuming from the last checkpoint rewrites it
  }
  const total = cfg.stages.reduce((n, st) => n + st.steps, 0);
  return s && s.interrupted === false && s.steps === total ? s : null;
}
