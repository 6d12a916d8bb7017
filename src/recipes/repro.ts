// `longctx repro`: the paper's long-context ablations at laptop scale, top to bottom.
//
//   tokenizer (BPE on the bundled corpora) -> data (token shards, held-out documents)
//     -> base: a short-context model (RoPE, trained at baseLen)
//     -> one continual-pretraining run per positional encoding and seed (paper §4.1: RoPE
//        unchanged, PI, ABF, xPos ABF; beyond it: YaRN, NTK), same tokens per step, to longLen
//     -> evaluation of the base and every extension on held-out documents, up to twice longLen,
//        each seed on its own examples (the same for every model of that seed: paired)
//     -> report.html: every claim of the paper the runs touch, with a verdict (report/claims.ts)
//
// The RoPE bases keep the paper's geometry, not its numbers (model/rope-geometry.ts): at 256 ->
// 2,048 the base model gets theta 190 and ABF 7,100 (--theta-literal: 10,000 -> 500,000). A stated
// share of training rows repeats a passage of the training text after a gap (data/synthetic.ts):
// without it a model this size does not learn to copy from its context in a laptop budget; a share
// of those are passkey documents with training text as filler (data/passkey.ts) and first-sentence
// documents on training text (data/first-sentence.ts): without them it does not learn to answer the
// two tests' questions.
//
// `repro curriculum` (paper §4.4): from-scratch training at the long length vs switching from the
// short to the long length after 20 / 40 / 80% of the tokens, at equal tokens, with their FLOPs.
//
// Every stage is cached by a hash of its settings (recipes/stages.ts): re-running skips what is
// done, an interrupted training run resumes from its last checkpoint.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseSources, readSources } from '../data/sources.js';
import { trainBpe } from '../data/tokenizer/train.js';
import { saveTokenizer } from '../data/tokenizer/load.js';
import { prepareData } from '../data/prepare.js';
import { latestCheckpoint, readMetrics, readRunConfig, SUMMARY, FINAL_MODEL } from '../train/run.js';
import type { TrainEnv, TrainSummary } from '../train/trainer.js';
import type { Backend } from '../kernels/backend.js';
import { pretrain, extend, resume, type CommonOptions } from './pretrain.js';
import { evaluateModel, type EvaluateOptions } from './evaluate.js';
import type { EvalResults } from '../eval/run.js';
import { runStage, type StageOutcome } from './stages.js';
import { writeFileAtomic } from '../util/atomic.js';
import { benchTrain } from '../bench/train.js';
import { humanDuration } from '../util/progress.js';
import { presetConfig } from '../model/config.js';
import { PAPER_GEOMETRY, scaledGeometry, type ScaledGeometry } from '../model/rope-geometry.js';
import { renderReport } from '../report/html.js';
import { computeClaims, type ClaimRow, type ClaimsInput } from '../report/claims.js';
import { buildReproReport, claimsSection, curriculumSection, type CurriculumRow, type ReproReportInput } from '../report/repro.js';

/** The positional encodings of the ablation, in the order the report lists them. */
export const REPRO_VARIANTS = ['rope', 'pi', 'abf', 'xpos-abf', 'yarn', 'ntk'] as const;
export type ReproVariant = (typeof REPRO_VARIANTS)[number];

export const VARIANT_LABELS: Record<ReproVariant | 'base' | 'base-paper-data', string> = {
  base: 'base (RoPE, short context)',
  'base-paper-data': 'base without synthetic rows',
  rope: 'RoPE unchanged',
  pi: 'RoPE PI',
  abf: 'RoPE ABF',
  'xpos-abf': 'xPos ABF',
  yarn: 'YaRN',
  ntk: 'NTK',
};

export interface ReproPreset {
  name: 'quick' | 'default' | 'full';
  sources: string; // bundled corpora
  vocab: number;
  model: string; // model preset
  /** share of training rows that repeat a training passage after a gap, in the base run and every extension (data/synthetic.ts); 0 = the paper's data only */
  synthetic: number;
  /** share of the base run's steps at its start whose rows are all copying warm-up rows (data/synthetic.ts) */
  syntheticFirst: number;
  /** share of the synthetic rows (after the warm-up) written in the passkey test's format with training-text filler (data/passkey.ts) */
  syntheticPasskey: number;
  /** share of the synthetic rows (after the warm-up) written in the first-sentence test's format on training text (data/first-sentence.ts) */
  syntheticFirstSentence: number;
  /** training seeds of every extension (the base is trained once, like Llama 2) */
  seeds: number;
  /** the positional encodings run by default */
  variants: ReproVariant[];
  /** also train the base model without synthetic rows (the ablation of our deviation) */
  ablateSynthetic: boolean;
  baseLen: number;
  baseTokens: number;
  baseLr: number;
  tokensPerStep: number;
  longLen: number;
  extendTokens: number;
  /** evaluation: the longest context (beyond longLen shows extrapolation) and samples per cell */
  evalMaxLen: number;
  pplSequences: number;
  /** spans of the copy probe (each at every distance) */
  copySpans: number;
  /** also the needle-in-a-haystack grid (the report's heatmap); quick leaves it out for time */
  needle: boolean;
  retrievalSamples: number;
  /** curriculum: total tokens of each schedule */
  curriculumTokens: number;
  /** instruction-tuning ablation: optimizer steps and sequences per step of each row, its peak learning rate, the cloze generator's context */
  instructSteps: number;
  instructBatch: number;
  instructLr: number;
  instructCtx: number;
}

// Sizes measured on the 2-core machine of BENCHMARKS.md; README lists the times.
export const REPRO_PRESETS: Record<ReproPreset['name'], ReproPreset> = {
  quick: {
    name: 'quick', sources: 'moby-dick,sotu', vocab: 1024, model: 'repro', synthetic: 0.5, syntheticFirst: 0.8, syntheticPasskey: 0.6, syntheticFirstSentence: 0.3, seeds: 1, variants: ['rope', 'pi', 'abf'], ablateSynthetic: false,
    baseLen: 256, baseTokens: 5_324_800, baseLr: 1e-3, tokensPerStep: 4096,
    longLen: 1024, extendTokens: 204_800,
    evalMaxLen: 2048, pplSequences: 4, copySpans: 8, needle: false, retrievalSamples: 2, curriculumTokens: 600_000,
    instructSteps: 40, instructBatch: 4, instructLr: 2e-3, instructCtx: 512,
  },
  default: {
    name: 'default', sources: 'moby-dick,sotu,code', vocab: 1024, model: 'repro', synthetic: 0.5, syntheticFirst: 0.4, syntheticPasskey: 0.6, syntheticFirstSentence: 0.3, seeds: 3, variants: ['rope', 'pi', 'abf', 'xpos-abf'], ablateSynthetic: true,
    baseLen: 256, baseTokens: 20_480_000, baseLr: 1e-3, tokensPerStep: 4096,
    longLen: 2048, extendTokens: 2_097_152,
    evalMaxLen: 4096, pplSequences: 8, copySpans: 16, needle: true, retrievalSamples: 4, curriculumTokens: 4_000_000,
    instructSteps: 150, instructBatch: 8, instructLr: 2e-3, instructCtx: 512,
  },
  // The default's model and lengths (the shape known to learn copying in this budget) with the
  // power to decide its claims: every encoding, 5 seeds and twice the evaluation items.
  full: {
    name: 'full', sources: 'moby-dick,sotu,code', vocab: 1024, model: 'repro', synthetic: 0.5, syntheticFirst: 0.4, syntheticPasskey: 0.6, syntheticFirstSentence: 0.3, seeds: 5, variants: [...REPRO_VARIANTS], ablateSynthetic: true,
    baseLen: 256, baseTokens: 20_480_000, baseLr: 1e-3, tokensPerStep: 4096,
    longLen: 2048, extendTokens: 2_097_152,
    evalMaxLen: 4096, pplSequences: 16, copySpans: 32, needle: true, retrievalSamples: 8, curriculumTokens: 4_000_000,
    instructSteps: 150, instructBatch: 8, instructLr: 2e-3, instructCtx: 512,
  },
};

export interface ReproOptions {
  preset: ReproPreset;
  out: string;
  only?: ReproVariant[];
  /** multiplies every training token budget (tests run --quick at a fraction) */
  tokenScale?: number;
  seed?: number;
  /** the paper's bases 10,000 -> 500,000 instead of the geometry kept at our lengths */
  thetaLiteral?: boolean;
  /** overrides the preset's extension seeds */
  seeds?: number;
  /** overrides the preset's synthetic share (0: the paper's data only) */
  synthetic?: number;
  quiet?: boolean;
  log?: (line: string) => void;
  /** the kernels every stage computes with (the CLI's --kernels) */
  backend: Backend;
}

export interface ReproRun {
  variant: ReproVariant | 'base' | 'base-paper-data';
  /** training seed (extensions) or evaluation seed (the base, evaluated once per seed) */
  seed: number;
  label: string;
  runDir: string;
  evalDir: string;
  summary: TrainSummary;
  results: EvalResults;
}

export interface ReproOutcome {
  preset: ReproPreset;
  tokenScale: number;
  thetas: ReproThetas;
  synthetic: number;
  seeds: number;
  runs: ReproRun[];
  stages: { name: string; seconds: number; skipped: boolean }[];
}

/** Parses `--only abf,pi`; the error lists the choices. */
export function parseVariants(list: string): ReproVariant[] {
  const items = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of items) {
    if (!(REPRO_VARIANTS as readonly string[]).includes(s)) throw new Error(`--only: unknown positional encoding "${s}" (choose from ${REPRO_VARIANTS.join(', ')})`);
  }
  if (items.length === 0) throw new Error(`--only is empty (choose from ${REPRO_VARIANTS.join(', ')})`);
  return REPRO_VARIANTS.filter((v) => items.includes(v));
}

export interface ReproThetas {
  base: number;
  abf: number;
  /** the derivation, null with --theta-literal */
  geometry: ScaledGeometry | null;
}

/** The RoPE bases of the base model and of ABF: the paper's geometry at our lengths, or its literal numbers. */
export function reproThetas(p: ReproPreset, literal = false): ReproThetas {
  if (literal) return { base: PAPER_GEOMETRY.baseTheta, abf: PAPER_GEOMETRY.abfTheta, geometry: null };
  const g = scaledGeometry(p.baseLen, p.longLen, presetConfig(p.model).head_dim);
  return { base: g.baseTheta, abf: g.abfTheta, geometry: g };
}

/** Run and eval folder names: seed 0 keeps the plain name (runs/abf), later seeds add it (runs/abf-s1). */
export function seededName(v: string, seed: number): string {
  return seed === 0 ? v : `${v}-s${seed}`;
}

export interface Shared {
  tokenizerDir: string; dataDir: string; dataKey: string; stages: ReproOutcome['stages']; log: (l: string) => void; quiet: boolean;
  /** the kernels every stage trains and evaluates with */
  backend: Backend;
  /** stages planned and started so far, for the "stage i/n" of the log lines (total 0: not counted) */
  plan: { total: number; started: number };
}

/** "stage i/n" for the next stage of the plan, or nothing when the recipe does not count its stages. */
function nextLabel(sh: Shared): { label?: string } {
  if (sh.plan.total <= 0) return {};
  sh.plan.started++;
  return { label: `stage ${sh.plan.started}/${Math.max(sh.plan.total, sh.plan.started)}` };
}

function scaled(tokens: number, scale: number, tokensPerStep: number): number {
  return Math.max(tokensPerStep * 4, Math.round((tokens * scale) / tokensPerStep) * tokensPerStep);
}

export function note<T>(sh: Shared, name: string, o: StageOutcome<T>): T {
  sh.stages.push({ name, seconds: o.seconds, skipped: o.skipped });
  return o.result;
}

/** Tokenizer and token shards, shared by the ablations. */
export async function prepareShared(p: ReproPreset, out: string, seed: number, log: (l: string) => void, quiet: boolean, backend: Backend, totalStages = 0): Promise<Shared> {
  const sh: Shared = { tokenizerDir: path.join(out, 'tokenizer'), dataDir: path.join(out, 'data'), dataKey: '', stages: [], log, quiet, backend, plan: { total: totalStages, started: 0 } };
  const tokSettings = { sources: p.sources, vocab: p.vocab };
  const tok = await runStage({
    name: 'tokenizer', ...nextLabel(sh), dir: sh.tokenizerDir, settings: tokSettings,
    run: async () => {
      const docs = (function* () { for (const d of readSources(parseSources(p.sources))) yield d.text; })();
      saveTokenizer(sh.tokenizerDir, trainBpe(docs, { vocabSize: p.vocab }).tokenizer);
    },
    load: () => undefined,
  }, log);
  note(sh, 'tokenizer', tok);
  const dataSettings = { tokenizer: tok.key, sources: p.sources, seed };
  const data = await runStage({
    name: 'data', ...nextLabel(sh), dir: sh.dataDir, settings: dataSettings,
    // prepareData skips finished sources itself, so a partial folder is simply continued
    run: async () => { prepareData({ sources: parseSources(p.sources), tokenizer: sh.tokenizerDir, out: sh.dataDir, seed, progress: !quiet, log, force: true }); },
    load: () => undefined,
  }, log);
  note(sh, 'data', data);
  sh.dataKey = data.key;
  return sh;
}

function readSummary(runDir: string): TrainSummary {
  return JSON.parse(fs.readFileSync(path.join(runDir, SUMMARY), 'utf8')) as TrainSummary;
}

/** How a repro stage's training reports (never JSON: the repro prints its own lines) and computes. */
export function trainEnvOf(sh: Shared): TrainEnv {
  return { backend: sh.backend, json: false, quiet: sh.quiet };
}

/** A training stage: fresh, or resumed (by `resumeRun`) from the last checkpoint of an interrupted attempt. */
export async function trainStage(sh: Shared, name: string, dir: string, settings: unknown, start: () => Promise<TrainSummary>,
  resumeRun: (dir: string, env: TrainEnv) => Promise<TrainSummary> = resume): Promise<{ summary: TrainSummary; key: string }> {
  const o = await runStage({
    name, ...nextLabel(sh), dir, settings,
    run: async (partial) => {
      const io = trainEnvOf(sh);
      let s: TrainSummary;
      if (partial && fs.existsSync(path.join(dir, 'config.resolved.json')) && latestCheckpoint(dir)) {
        s = await resumeRun(dir, io);
      } else {
        fs.rmSync(dir, { recursive: true, force: true });
        s = await start();
      }
      if (s.interrupted) throw new Error(`${name} was interrupted; run the same command again to continue from its last checkpoint`);
      return s;
    },
    load: () => readSummary(dir),
  }, sh.log);
  return { summary: note(sh, name, o), key: o.key };
}

async function evalStage(sh: Shared, name: string, modelRunDir: string, modelKey: string, evalDir: string, e: EvaluateOptions): Promise<EvalResults> {
  // the kernels are not part of the stage's identity: a cached evaluation stands on other kernels
  // (like a training stage, whose settings leave them out)
  const { backend: _kernels, ...settings } = e;
  const o = await runStage({
    name, ...nextLabel(sh), dir: evalDir, settings: { model: modelKey, ...settings },
    run: async () => evaluateModel(path.join(modelRunDir, FINAL_MODEL), { ...e, out: evalDir, quiet: sh.quiet, backend: sh.backend }),
    load: () => JSON.parse(fs.readFileSync(path.join(evalDir, 'results.json'), 'utf8')) as EvalResults,
  }, sh.log);
  return note(sh, name, o);
}

function common(p: ReproPreset, out: string, schedule: string, tokens: number, seed: number): CommonOptions {
  return {
    out, schedule, tokens, tokensPerStep: p.tokensPerStep, seed,
    evalSequences: p.pplSequences, keepCheckpoints: 1, mix: {},
  };
}

/** The task-format kinds of synthetic rows (none without synthetic rows: the ablation has none). */
function syntheticKinds(p: ReproPreset, synthetic: number): { syntheticPasskey?: number; syntheticFirstSentence?: number } {
  if (!(synthetic > 0)) return {};
  return { ...(p.syntheticPasskey > 0 ? { syntheticPasskey: p.syntheticPasskey } : {}), ...(p.syntheticFirstSentence > 0 ? { syntheticFirstSentence: p.syntheticFirstSentence } : {}) };
}

/** The short-context base model: OUT/runs/base. */
export async function baseStage(sh: Shared, p: ReproPreset, out: string, scale: number, seed: number, thetas: ReproThetas = reproThetas(p), synthetic = p.synthetic, name = 'base'): Promise<{ summary: TrainSummary; key: string }> {
  const baseDir = path.join(out, 'runs', name);
  const baseTokens = scaled(p.baseTokens, scale, p.tokensPerStep);
  // the copying warm-up (all rows repeat rows) is part of the synthetic deviation: none without it
  const syntheticFirst = synthetic > 0 ? Math.round(p.syntheticFirst * baseTokens / p.tokensPerStep) : 0;
  const warmup = 20; // steps: the copying circuit forms within the first thousand; a long warm-up delays it
  const kinds = syntheticKinds(p, synthetic);
  const baseSettings = { data: sh.dataKey, model: p.model, len: p.baseLen, tokens: baseTokens, lr: p.baseLr, tps: p.tokensPerStep, seed, theta: thetas.base, synthetic, syntheticFirst, warmup, ...kinds };
  return trainStage(sh, name, baseDir, baseSettings, () =>
    pretrain({ ...common(p, baseDir, String(p.baseLen), baseTokens, seed), preset: p.model, data: sh.dataDir, lr: p.baseLr, ropeTheta: thetas.base, synthetic, syntheticFirst, ...kinds, warmup }, trainEnvOf(sh)));
}

/** The base model continually pretrained at longLen with one positional encoding: OUT/runs/VARIANT. */
export async function extendStage(sh: Shared, p: ReproPreset, out: string, baseKey: string, v: ReproVariant, scale: number, seed: number, thetas: ReproThetas = reproThetas(p), synthetic = p.synthetic, index = 0): Promise<{ summary: TrainSummary; key: string }> {
  const runDir = path.join(out, 'runs', seededName(v, index));
  const extendTokens = scaled(p.extendTokens, scale, p.tokensPerStep);
  const theta = v === 'abf' || v === 'xpos-abf' ? thetas.abf : undefined;
  const kinds = syntheticKinds(p, synthetic);
  const settings = { base: baseKey, rope: v, len: p.longLen, tokens: extendTokens, seed, theta: theta ?? null, synthetic, ...kinds };
  return trainStage(sh, `extend ${seededName(v, index)}`, runDir, settings, () =>
    extend({ ...common(p, runDir, String(p.longLen), extendTokens, seed), from: path.join(out, 'runs', 'base'), rope: v, ...(theta !== undefined ? { ropeTheta: theta } : {}), synthetic, ...kinds }, trainEnvOf(sh)));
}

/** The positional-encoding ablation (paper §4.1, Table 5 / Figure 5b at laptop scale), over seeds. */
/** Share of a repro's time its evaluations take beside training (measured: 12-16% for quick and default). */
const EVAL_OVERHEAD = 0.15;

/**
 * How long a repro takes on `backend`: its training tokens at the base and the long length over
 * the throughput of a timed training step of the repro's model at each (after one warm-up step:
 * about a second), plus EVAL_OVERHEAD for the evaluations.
 */
export function estimateRepro(p: ReproPreset, backend: Backend, o: { scale: number; seeds: number; variants: number; ablation: boolean }): { seconds: number; baseRate: number; longRate: number } {
  const model = { ...presetConfig(p.model), vocab_size: p.vocab, max_position_embeddings: p.longLen };
  const rate = (T: number): number => benchTrain('estimate', { model, seq_len: T, batch_size: Math.max(1, Math.floor(p.tokensPerStep / T)) }, backend, { steps: 1, warmup: 1, gemmCeiling: false }).tokens_per_second;
  const baseRate = rate(p.baseLen), longRate = rate(p.longLen);
  const train = (p.baseTokens * o.scale * (o.ablation ? 2 : 1)) / baseRate + (o.seeds * o.variants * p.extendTokens * o.scale) / longRate;
  return { seconds: train * (1 + EVAL_OVERHEAD), baseRate, longRate };
}

export async function repro(o: ReproOptions): Promise<ReproOutcome> {
  const p = o.preset;
  const log = o.log ?? ((l: string) => process.stderr.write(`repro: ${l}\n`));
  const scale = o.tokenScale ?? 1;
  if (!(scale > 0)) throw new Error(`--token-scale must be positive, got ${scale}`);
  const seed = o.seed ?? 0;
  const seeds = o.seeds ?? p.seeds;
  if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`--seeds must be a positive integer, got ${seeds}`);
  const synthetic = o.synthetic ?? p.synthetic;
  if (!(synthetic >= 0 && synthetic < 1)) throw new Error(`--synthetic must be a share in [0, 1), got ${synthetic}`);
  const thetas = reproThetas(p, o.thetaLiteral ?? false);
  const variants = o.only ?? p.variants;
  // tokenizer, data, base; per seed the base's eval and each variant's extension and eval; the ablation
  const ablation = p.ablateSynthetic && synthetic > 0 && !o.only;
  const total = 3 + seeds * (1 + 2 * variants.length) + (ablation ? 1 + seeds : 0);
  // the time it will take, said before it starts (a folder whose base model is done is mostly cached: no estimate)
  if (!fs.existsSync(path.join(o.out, 'runs', 'base', SUMMARY))) {
    const est = estimateRepro(p, o.backend, { scale, seeds, variants: variants.length, ablation });
    log(`${total} stages, about ${humanDuration(est.seconds)} on these kernels (estimated from timed training steps: ${Math.round(est.baseRate).toLocaleString('en-US')} tokens/s at ${p.baseLen}, ${Math.round(est.longRate).toLocaleString('en-US')} at ${p.longLen})`);
  }
  const sh = await prepareShared(p, o.out, seed, log, o.quiet ?? false, o.backend, total);

  const baseDir = path.join(o.out, 'runs', 'base');
  const base = await baseStage(sh, p, o.out, scale, seed, thetas, synthetic);

  const runs: ReproRun[] = [];
  // every model of seed s sees the same evaluation examples, drawn from s
  // retrieval lengths from half the base length: a prompt of exactly the trained length puts its
  // answer beyond it, so "within the base length" should not be only its edge
  const lengths: number[] = [];
  for (let l = p.baseLen / 2; l <= p.evalMaxLen; l *= 2) lengths.push(l);
  const evalOptsFor = (s: number, tasks: EvaluateOptions['tasks']): EvaluateOptions => ({
    tasks, maxLen: p.evalMaxLen, lengths, data: sh.dataDir, seed: s, pplSamples: p.pplSequences, copySamples: p.copySpans, samples: p.retrievalSamples, backend: sh.backend,
  });
  for (let k = 0; k < seeds; k++) {
    const s = seed + k;
    const evalOpts = evalOptsFor(s, ['ppl', 'copy', 'first-sentence', 'passkey', ...(p.needle ? ['needle' as const] : [])]);
    const baseEvalDir = path.join(o.out, 'eval', seededName('base', k));
    runs.push({ variant: 'base', seed: s, label: VARIANT_LABELS.base, runDir: baseDir, evalDir: baseEvalDir, summary: base.summary, results: await evalStage(sh, `eval ${seededName('base', k)}`, baseDir, base.key, baseEvalDir, evalOpts) });
    for (const v of variants) {
      const ext = await extendStage(sh, p, o.out, base.key, v, scale, s, thetas, synthetic, k);
      const runDir = path.join(o.out, 'runs', seededName(v, k));
      const evalDir = path.join(o.out, 'eval', seededName(v, k));
      runs.push({ variant: v, seed: s, label: VARIANT_LABELS[v], runDir, evalDir, summary: ext.summary, results: await evalStage(sh, `eval ${seededName(v, k)}`, runDir, ext.key, evalDir, evalOpts) });
    }
  }
  // the ablation of our deviation: the same base model on the paper's kind of data only
  if (ablation) {
    const name = 'base-paper-data';
    const plain = await baseStage(sh, p, o.out, scale, seed, thetas, 0, name);
    for (let k = 0; k < seeds; k++) {
      const runDir = path.join(o.out, 'runs', name), evalDir = path.join(o.out, 'eval', seededName(name, k));
      runs.push({ variant: name, seed: seed + k, label: VARIANT_LABELS[name], runDir, evalDir, summary: plain.summary, results: await evalStage(sh, `eval ${seededName(name, k)}`, runDir, plain.key, evalDir, evalOptsFor(seed + k, ['ppl', 'copy', 'passkey'])) });
    }
  }
  return { preset: p, tokenScale: scale, thetas, synthetic, seeds, runs, stages: sh.stages };
}

export interface CurriculumRun {
  name: string; // e.g. "256 -> 2048 at 40%"
  schedule: string;
  shortShare: number; // share of tokens at the short length (0 = from scratch at the long length)
  seed: number;
  runDir: string;
  summary: TrainSummary;
  /** held-out loss by position at the long length (the ppl probe), for the claim's paired interval */
  results: EvalResults;
}

export interface CurriculumOutcome { preset: ReproPreset; tokenScale: number; seeds: number; runs: CurriculumRun[]; stages: ReproOutcome['stages'] }

/** Where seed k's curriculum run of a schedule lives: OUT/curriculum/SCHED for the first seed (the table), OUT/curriculum-seeds/SCHED-sK after. */
function curriculumDirs(out: string, schedule: string, k: number): { runDir: string; evalDir: string } {
  const name = schedule.replace(/[:,]/g, '_');
  return k === 0
    ? { runDir: path.join(out, 'curriculum', name), evalDir: path.join(out, 'curriculum-eval', name) }
    : { runDir: path.join(out, 'curriculum-seeds', `${name}-s${k}`), evalDir: path.join(out, 'curriculum-eval', `${name}-s${k}`) };
}

/**
 * The paper's §4.4 / Table 6 at laptop scale: when to switch to long sequences, at equal tokens.
 * The first seed trains every schedule (the table); the other seeds train the two the claim compares,
 * from scratch and the switch after 80%. Every final model's held-out loss at the long length is
 * measured on the same sequences per seed, so the comparison is paired.
 */
export async function reproCurriculum(o: Omit<ReproOptions, 'only'>): Promise<CurriculumOutcome> {
  const p = o.preset;
  const log = o.log ?? ((l: string) => process.stderr.write(`repro curriculum: ${l}\n`));
  const scale = o.tokenScale ?? 1;
  const seed = o.seed ?? 0;
  const seeds = o.seeds ?? p.seeds;
  if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`--seeds must be a positive integer, got ${seeds}`);
  const plans = [
    { name: `${p.longLen} from scratch`, schedule: `${p.longLen}`, shortShare: 0 },
    ...[0.2, 0.4, 0.8].map((s) => ({ name: `${p.baseLen} -> ${p.longLen} after ${Math.round(s * 100)}%`, schedule: `${p.baseLen}:${s},${p.longLen}:${+(1 - s).toFixed(2)}`, shortShare: s })),
  ];
  const compared = plans.filter((c) => c.shortShare === 0 || c.shortShare === 0.8);
  const sh = await prepareShared(p, o.out, seed, log, o.quiet ?? false, o.backend, 2 + 2 * (plans.length + (seeds - 1) * compared.length));
  const tokens = scaled(p.curriculumTokens, scale, p.tokensPerStep);
  const abfTheta = reproThetas(p, o.thetaLiteral ?? false).abf;
  const runs: CurriculumRun[] = [];
  for (let k = 0; k < seeds; k++) {
    const s = seed + k;
    for (const c of k === 0 ? plans : compared) {
      const { runDir, evalDir } = curriculumDirs(o.out, c.schedule, k);
      const label = `curriculum ${c.name}${k === 0 ? '' : ` (seed ${s})`}`;
      const settings = { data: sh.dataKey, model: p.model, schedule: c.schedule, tokens, lr: p.baseLr, tps: p.tokensPerStep, seed: s, rope_theta: abfTheta, synthetic: p.synthetic };
      const r = await trainStage(sh, label, runDir, settings, () =>
        pretrain({
          ...common(p, runDir, c.schedule, tokens, s), preset: p.model, data: sh.dataDir, lr: p.baseLr, ropeTheta: abfTheta, synthetic: p.synthetic,
          evalLengths: [p.baseLen, p.longLen],
        }, trainEnvOf(sh)));
      const results = await evalStage(sh, `eval ${label}`, runDir, r.key, evalDir, { tasks: ['ppl'], maxLen: p.longLen, data: sh.dataDir, seed: s, pplSamples: p.pplSequences, backend: sh.backend });
      runs.push({ ...c, seed: s, runDir, summary: r.summary, results });
    }
  }
  return { preset: p, tokenScale: scale, seeds, runs, stages: sh.stages };
}

/** Held-out evaluations of the curriculum runs on disk (OUT/curriculum-eval), for the claim in the main report. */
function curriculumEvalsOnDisk(out: string, p: ReproPreset, seed: number): { shortShare: number; seed: number; flops: number; results: EvalResults }[] {
  const rows: { shortShare: number; seed: number; flops: number; results: EvalResults }[] = [];
  for (const share of [0, 0.8]) {
    const schedule = share === 0 ? `${p.longLen}` : `${p.baseLen}:${share},${p.longLen}:${+(1 - share).toFixed(2)}`;
    for (let k = 0; ; k++) {
      const { runDir, evalDir } = curriculumDirs(out, schedule, k);
      const file = path.join(evalDir, 'results.json');
      if (!fs.existsSync(file) || !fs.existsSync(path.join(runDir, SUMMARY))) break;
      rows.push({ shortShare: share, seed: seed + k, flops: readSummary(runDir).flops, results: JSON.parse(fs.readFileSync(file, 'utf8')) as EvalResults });
    }
  }
  return rows;
}

/** Training curve points of a run folder (metrics.jsonl train lines). */
export function trainingCurve(runDir: string): { step: number; tokens: number; loss: number; seqLen: number }[] {
  return readMetrics(runDir).flatMap((m) => (m.type === 'train' ? [{ step: m.step, tokens: m.tokens, loss: m.loss, seqLen: m.seq_len }] : []));
}

/** Curriculum rows already on disk under OUT/curriculum (for the main report), in schedule order. */
function curriculumOnDisk(out: string, p: ReproPreset): NonNullable<ReproReportInput['curriculum']> | null {
  const dir = path.join(out, 'curriculum');
  if (!fs.existsSync(dir)) return null;
  const rows: CurriculumRow[] = [];
  let tokens = 0;
  for (const name of fs.readdirSync(dir).sort()) {
    const runDir = path.join(dir, name);
    if (!fs.existsSync(path.join(runDir, SUMMARY))) continue;
    const s = readSummary(runDir);
    const sched = readRunConfig(runDir).schedule;
    const schedule = sched.map((e) => (sched.length > 1 ? `${e.seqLen}:${e.share}` : `${e.seqLen}`)).join(',');
    const share = sched.length > 1 ? sched[0]!.share : 0;
    rows.push({ name: share === 0 ? `${p.longLen} from scratch` : `switch after ${Math.round(share * 100)}%`, schedule, shortShare: share, flops: s.flops, valLoss: s.valLoss, seconds: s.seconds });
    tokens = s.tokens;
  }
  rows.sort((a, b) => b.flops - a.flops); // from scratch first, then later switches
  return rows.length > 0 ? { rows, baseLen: p.baseLen, longLen: p.longLen, tokens } : null;
}

/** What the main report adds from the other ablations found on disk. */
export interface ReproExtras extends Pick<ReproReportInput, 'instruct'> {
  /** repro instruct's per-sequence answer losses, every seed (Table 9's claims) */
  instructEvals?: ClaimsInput['instructEvals'];
}

function reportInput(o: ReproOutcome, out: string, extras: ReproExtras): ReproReportInput {
  const { instructEvals, ...extra } = extras;
  const p = o.preset;
  const base = o.runs.find((r) => r.variant === 'base');
  const cfg = base ? readRunConfig(base.runDir).model : null;
  // charts and per-run tables show the first seed; the claims use every seed
  const firstSeed = o.runs[0]?.seed ?? 0;
  const evalRuns = o.runs.filter((r) => r.seed === firstSeed).map((r) => ({
    name: r.label, variant: r.variant, results: r.results, dir: r.evalDir,
    curve: trainingCurve(r.runDir), trainSeconds: r.summary.seconds,
  }));
  const curriculum = curriculumOnDisk(out, p);
  const claims = computeClaims({
    baseLen: p.baseLen, longLen: p.longLen,
    evals: o.runs.map((r) => ({ variant: r.variant, seed: r.seed, results: r.results })),
    curriculum: curriculum?.rows.map((r) => ({ name: r.name, shortShare: r.shortShare, flops: r.flops, valLong: r.valLoss[String(p.longLen)] ?? null })) ?? null,
    curriculumEvals: curriculumEvalsOnDisk(out, p, o.runs[0]?.seed ?? 0),
    instruct: extra.instruct?.rows.map((r) => ({ name: r.name, after: r.after })) ?? null,
    instructEvals: instructEvals ?? null,
  });
  const scale = o.tokenScale === 1 ? '' : ` (x${o.tokenScale} token scale)`;
  const extTokens = o.runs.find((r) => r.variant !== 'base')?.summary.tokens.toLocaleString('en-US') ?? '?';
  return {
    preset: p.name,
    description: `Preset ${p.name}${scale}: a ${p.model} LLaMA (${cfg ? `${cfg.num_hidden_layers} layers, hidden ${cfg.hidden_size}, head size ${cfg.head_dim}, vocabulary ${cfg.vocab_size}` : '?'}) pretrained on ${base?.summary.tokens.toLocaleString('en-US') ?? '?'} tokens of ${p.sources} at ${p.baseLen} tokens with RoPE base ${o.thetas.base.toLocaleString('en-US')}, then continually pretrained at ${p.longLen} with each positional encoding on ${extTokens} tokens (same tokens per step; ABF base ${o.thetas.abf.toLocaleString('en-US')}), ${o.seeds} seed${o.seeds === 1 ? '' : 's'} each, and evaluated on held-out documents up to ${p.evalMaxLen} tokens.${o.synthetic > 0 ? ` ${(100 * o.synthetic).toFixed(0)}% of training rows are synthetic (our deviation from the paper): repeated passages${p.syntheticPasskey > 0 ? `; ${(100 * p.syntheticPasskey).toFixed(0)}% of them (after the warm-up) are passkey documents with training text as filler` : ''}${p.syntheticFirstSentence > 0 ? `, ${(100 * p.syntheticFirstSentence).toFixed(0)}% first-sentence documents on training text` : ''}.` : ''} Charts and per-run tables show the first seed; the claims use all.`,
    claims, geometry: o.thetas.geometry, synthetic: o.synthetic, seeds: o.seeds,
    baseLen: p.baseLen, longLen: p.longLen, headDim: cfg?.head_dim ?? 64, ropeTheta: o.thetas.base,
    abfTheta: o.thetas.abf, piFactor: p.longLen / p.baseLen,
    runs: evalRuns,
    curriculum,
    ...extra,
    stages: o.stages,
  };
}

/** Writes OUT/report.html for a finished ablation (atomically); `extra` adds sections of the other ablations found on disk. */
export async function writeReproReport(o: ReproOutcome, out: string, extra: ReproExtras = {}): Promise<{ file: string; claims: ClaimRow[] }> {
  const file = path.join(out, 'report.html');
  const input = reportInput(o, out, extra);
  writeFileAtomic(file, await buildReproReport(input));
  writeFileAtomic(path.join(out, 'claims.json'), JSON.stringify({ preset: o.preset.name, seeds: o.seeds, synthetic: o.synthetic, thetas: { base: o.thetas.base, abf: o.thetas.abf }, claims: input.claims }, null, 2) + '\n');
  return { file, claims: input.claims };
}

/** Writes OUT/curriculum.html: the §4.4 claim with its interval and the table on their own. Returns the file and the claim. */
export async function writeCurriculumReport(c: CurriculumOutcome, out: string): Promise<{ file: string; claims: ClaimRow[] }> {
  const p = c.preset;
  const file = path.join(out, 'curriculum.html');
  const table = curriculumOnDisk(out, p);
  if (!table) throw new Error(`no finished curriculum runs under ${path.join(out, 'curriculum')}`);
  const claims = computeClaims({
    baseLen: p.baseLen, longLen: p.longLen, evals: [],
    curriculumEvals: c.runs.filter((r) => r.shortShare === 0 || Math.abs(r.shortShare - 0.8) < 1e-9).map((r) => ({ shortShare: r.shortShare, seed: r.seed, flops: r.summary.flops, results: r.results })),
  });
  writeFileAtomic(file, renderReport({
    title: `longctx repro curriculum (${p.name})`, subtitle: 'When to switch to long sequences, at equal tokens (paper §4.4)',
    sections: [...(claims.length > 0 ? [claimsSection({ claims, seeds: c.seeds, synthetic: 0 })] : []), curriculumSection(table)],
  }));
  return { file, claims };
}
