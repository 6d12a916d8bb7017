// The training loop shared by the recipes: stages of a length curriculum at constant tokens per
// step, gradient accumulation, validation at every length of the schedule, atomic checkpoints,
// exact resume, a NaN guard and progress. Recipes (src/recipes) build the plan and call train().

import * as os from 'node:os';
import * as path from 'node:path';
import { forward, type LlamaModel } from '../model/llama.js';
import { memoryEstimate } from '../model/estimate.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { saveModelFolder } from '../io/hf.js';
import { writeFileAtomic, type FileData } from '../util/atomic.js';
import { IGNORE_INDEX, scoredTargets, type Backend } from '../kernels/backend.js';
import { Progress } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import type { OptimizerState } from './adamw.js';
import { lrAt, type LrSchedule } from './schedule.js';
import { trainStep, NonFiniteLossError, type MicroBatch } from './step.js';
import { stageAt, type Stage } from './curriculum.js';
import { saveCheckpoint } from './checkpoint.js';
import {
  appendMetrics, checkpointName, latestCheckpoint, markLatest, readMetrics, unlockRun, CHECKPOINTS, FINAL_MODEL, SUMMARY, type MetricLine, type RunConfig,
} from './run.js';

/**
 * What the loop draws batches from: the packed pretraining stream (data/pack.ts's BatchIterator) or
 * instruction-tuning sequences with masked targets (instruct/batches.ts). state() is saved in every
 * checkpoint and must let the recipe restore the iterator exactly.
 */
export interface TrainBatches {
  readonly seqLen: number;
  readonly batchSize: number;
  reshape(seqLen: number, batchSize?: number): void;
  /** tokens/targets (B*T); a target of IGNORE_INDEX (-100) is left out of the loss */
  next(): { tokens: Int32Array; targets: Int32Array; B: number; T: number };
  state(): unknown;
}

/** Held-out sequences for validation at one length: tokens/targets (count*T), masked targets allowed. */
export interface EvalSet {
  tokens: Int32Array;
  targets: Int32Array;
  count: number;
}

/**
 * What the loop needs besides batches: the tokenizer files saved with every checkpoint and the final
 * model, and the validation sequences at a length.
 */
export interface TrainData {
  files: Record<string, FileData>;
  evalSet(T: number, n: number): EvalSet;
}


/** tokenizer.json (+ tokenizer_config.json when given) as checkpoint files. */
export function tokenizerFiles(tok: Tokenizer, tokenizerConfig?: Record<string, unknown>): Record<string, FileData> {
  return {
    'tokenizer.json': tok.toJSON(),
    ...(tokenizerConfig ? { 'tokenizer_config.json': JSON.stringify(tokenizerConfig, null, 2) + '\n' } : {}),
  };
}

export interface TrainState {
  model: LlamaModel;
  opt: OptimizerState;
  data: TrainBatches;
  step: number; // optimizer steps done
  tokens: number; // training tokens consumed
  rng: Rng;
  /** training seconds of the earlier processes of this run (resume), default 0 */
  seconds?: number;
}

/** Where a run computes and how it reports: resolved once by the caller (the CLI) and passed down. */
export interface TrainEnv {
  /** the kernels every model of the run computes with; recorded in the run config */
  backend: Backend;
  json: boolean; // JSON lines on stdout instead of the progress bar
  quiet?: boolean;
  /** stop after this many optimizer steps in this process (tests; the run stays resumable) */
  stopAfter?: number;
}

export interface TrainSummary {
  steps: number;
  tokens: number;
  flops: number;
  seconds: number;
  finalLoss: number;
  valLoss: Record<string, number>; // by sequence length
  stageFlops: { seqLen: number; steps: number; flops: number }[];
  model: string;
  interrupted: boolean;
  /** the signal that stopped an interrupted run (the CLI exits 128 + its number, as the shell expects) */
  signal?: 'SIGINT' | 'SIGTERM';
}

export function lrSchedule(cfg: RunConfig): LrSchedule {
  const totalSteps = cfg.stages.reduce((n, s) => n + s.steps, 0);
  return { ...cfg.lr, totalSteps };
}

/**
 * Sequences per micro-batch: the largest divisor of the stage's batch whose training memory fits
 * in `budgetBytes` and keeps at most ~16k tokens per forward (larger buys no GEMM efficiency).
 * Throws with the estimate and a suggestion when even one sequence does not fit.
 */
export function chooseMicroBatch(cfg: RunConfig['model'], stage: Stage, budgetBytes: number): number {
  const one = memoryEstimate(cfg, stage.seqLen, 1).trainingBytes;
  if (one > budgetBytes) {
    const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GiB`;
    throw new Error(
      `training at sequence length ${stage.seqLen} needs ~${gib(one)} (weights, gradients, AdamW and activations of one sequence) but ~${gib(budgetBytes)} is free; ` +
      'use a smaller model or a shorter --seq-len / --schedule, or free memory',
    );
  }
  let best = 1;
  for (let mb = 1; mb <= stage.batchSize; mb++) {
    if (stage.batchSize % mb !== 0) continue;
    if (mb * stage.seqLen > Math.max(stage.seqLen, 16384)) break;
    if (memoryEstimate(cfg, stage.seqLen, mb).trainingBytes <= budgetBytes) best = mb;
  }
  return best;
}

/** Free memory we allow a run to plan for: most of what the OS reports free now. */
export function memoryBudget(): number {
  return Math.floor(os.freemem() * 0.8);
}


/**
 * Mean validation loss per scored target at each length, in micro-batches of at most `maxRows`
 * rows. Each micro-batch's mean is weighted by its number of scored (not ignored) targets, so with
 * masked targets (instruction data) the figure is the mean over all scored tokens; with none masked
 * it is the plain mean over sequences.
 */
export function validate(m: LlamaModel, sets: Map<number, EvalSet>, maxRows = 8192): Map<number, number> {
  const out = new Map<number, number>();
  for (const [T, set] of sets) {
    const per = Math.max(1, Math.min(set.count, Math.floor(maxRows / T)));
    let masked = false;
    for (let k = 0; k < set.count * T && !masked; k++) masked = set.targets[k] === IGNORE_INDEX;
    let sum = 0;
    let weight = 0;
    for (let i = 0; i < set.count; i += per) {
      const b = Math.min(per, set.count - i);
      const targets = set.targets.subarray(i * T, (i + b) * T);
      // unmasked: sequences as the weight (the figures pretraining has always reported, bit for bit)
      let w = b;
      if (masked) {
        w = scoredTargets(targets);
        if (w === 0) continue;
      }
      sum += w * forward(m, set.tokens.subarray(i * T, (i + b) * T), targets, b, T);
      weight += w;
    }
    out.set(T, weight > 0 ? sum / weight : NaN);
  }
  return out;
}

function splitMicro(batch: { tokens: Int32Array; targets: Int32Array; B: number; T: number }, mb: number): MicroBatch[] {
  const out: MicroBatch[] = [];
  const { T } = batch;
  for (let b = 0; b < batch.B; b += mb) {
    out.push({ tokens: batch.tokens.subarray(b * T, (b + mb) * T), targets: batch.targets.subarray(b * T, (b + mb) * T), B: mb, T });
  }
  return out;
}

export async function train(runDir: string, cfg: RunConfig, data: TrainData, st: TrainState, io: TrainEnv): Promise<TrainSummary> {
  const schedule = lrSchedule(cfg);
  const totalSteps = schedule.totalSteps;
  const totalTokens = totalSteps * cfg.tokensPerStep;
  const evalSets = new Map(cfg.evalLengths.map((T) => [T, data.evalSet(T, cfg.evalSequences)] as const));
  const files = data.files;
  const started = Date.now();
  const secondsBefore = st.seconds ?? 0;
  let stopRequested: 'SIGINT' | 'SIGTERM' | null = null;
  const onSignal = (sig: NodeJS.Signals): void => { stopRequested = sig === 'SIGINT' ? 'SIGINT' : 'SIGTERM'; };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const bar = new Progress(cfg.kind, totalTokens, { unit: 'items', quiet: io.json || io.quiet, startAt: st.tokens });
  const emit = (lines: MetricLine[]): void => {
    appendMetrics(runDir, lines);
    if (io.json) for (const l of lines) process.stdout.write(JSON.stringify(l) + '\n');
  };
  const lastGood = (): string => {
    try {
      return latestCheckpoint(runDir) ?? `${path.join(runDir, CHECKPOINTS)} (none written yet: start the run again)`;
    } catch (e) {
      return `unknown (${(e as Error).message})`;
    }
  };
  const checkpoint = (): void => {
    // an update can overflow the weights while the loss before it was finite: such weights are
    // never written, so every checkpoint on disk is one a resume can start from
    const w = st.model.params.flat;
    for (let i = 0; i < w.length; i++) {
      if (!Number.isFinite(w[i]!)) throw new Error(`weight ${i} is ${w[i]} after optimizer step ${st.step}; training stopped without writing that checkpoint; the last good checkpoint is ${lastGood()} (resume with a lower --lr, or check the data)`);
    }
    const name = checkpointName(st.step);
    saveCheckpoint(path.join(runDir, CHECKPOINTS, name), st.model, st.opt, {
      step: st.step, tokens: st.tokens, rng: st.rng.state(), schedule, adam: cfg.adam, data: st.data.state(),
      seconds: secondsBefore + (Date.now() - started) / 1000,
    }, files);
    markLatest(runDir, name, cfg.keepCheckpoints);
  };
  const evaluate = (): Map<number, number> => {
    const v = validate(st.model, evalSets);
    emit([...v].map(([T, loss]) => ({ type: 'eval' as const, step: st.step, tokens: st.tokens, seq_len: T, val_loss: loss, val_ppl: Math.exp(loss), sequences: cfg.evalSequences })));
    return v;
  };

  let lastLoss = NaN;
  let currentStage: Stage | null = null;
  let processSteps = 0;
  let lastVal = new Map<number, number>();
  if (st.step === 0) {
    // the starting point of every curve; a run resumed from its step-0 checkpoint has it already
    const logged = readMetrics(runDir).filter((m) => m.type === 'eval' && m.step === 0);
    if (cfg.evalLengths.every((T) => logged.some((m) => m.type === 'eval' && m.seq_len === T))) {
      for (const m of logged) if (m.type === 'eval') lastVal.set(m.seq_len, m.val_loss);
    } else {
      lastVal = evaluate();
    }
    if (latestCheckpoint(runDir) === null) checkpoint();
  }
  try {
    while (st.step < totalSteps) {
      const stage = stageAt(cfg.stages, st.step);
      const stageIndex = cfg.stages.indexOf(stage);
      const mb = cfg.microBatch[stageIndex]!;
      if (stage !== currentStage) {
        currentStage = stage;
        if (st.data.seqLen !== stage.seqLen || st.data.batchSize !== stage.batchSize) st.data.reshape(stage.seqLen, stage.batchSize);
        // marks where a stage begins (a run resumed mid-stage has its mark already)
        if (st.step === stage.firstStep) emit([{ type: 'stage', step: st.step, seq_len: stage.seqLen, batch_size: stage.batchSize, micro_batch: mb }]);
      }
      const lr = lrAt(schedule, st.step);
      const t0 = process.hrtime.bigint();
      const batch = st.data.next();
      let r;
      try {
        r = trainStep(st.model, st.opt, cfg.adam, lr, splitMicro(batch, mb));
      } catch (e) {
        if (e instanceof NonFiniteLossError) {
          throw new Error(`${e.message}; training stopped, the last good checkpoint is ${lastGood()} (resume with a lower --lr, or check the data)`);
        }
        throw e;
      }
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      st.step += 1;
      st.tokens += cfg.tokensPerStep;
      lastLoss = r.loss;
      processSteps += 1;
      emit([{
        type: 'train', step: st.step, tokens: st.tokens, seq_len: stage.seqLen, loss: r.loss, lr, grad_norm: r.gradNorm,
        tokens_per_s: cfg.tokensPerStep / seconds, flops: stage.flops / Math.max(1, stage.steps),
      }]);
      bar.update(st.tokens, `step ${st.step}/${totalSteps}  T ${stage.seqLen}  loss ${r.loss.toFixed(4)}  ${Math.round(cfg.tokensPerStep / seconds)} tok/s`);
      const last = st.step === totalSteps;
      if (st.step % cfg.evalEvery === 0 || last) lastVal = evaluate();
      if (st.step % cfg.checkpointEvery === 0 || last) checkpoint();
      if (io.stopAfter !== undefined && processSteps >= io.stopAfter && !last) break;
      // Let signal handlers run between steps (the step itself is synchronous native work).
      await new Promise((resolve) => setImmediate(resolve));
      if (stopRequested) {
        if (st.step % cfg.checkpointEvery !== 0) checkpoint();
        process.stderr.write(`\nlongctx: stopped at step ${st.step}; resume with --resume ${runDir}\n`);
        break;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const done = st.step >= totalSteps;
  // a process that ran no step (killed during the final save, then resumed) reports the figures
  // its predecessors logged rather than none
  if (Number.isNaN(lastLoss) || lastVal.size === 0) {
    const logged = readMetrics(runDir).filter((m) => m.step <= st.step);
    const lastTrain = logged.filter((m) => m.type === 'train').pop();
    if (Number.isNaN(lastLoss) && lastTrain?.type === 'train') lastLoss = lastTrain.loss;
    const evals = logged.filter((m) => m.type === 'eval');
    const lastEvalStep = evals.length ? evals[evals.length - 1]!.step : -1;
    if (lastVal.size === 0) for (const m of evals) if (m.type === 'eval' && m.step === lastEvalStep) lastVal.set(m.seq_len, m.val_loss);
  }
  const modelDir = path.join(runDir, FINAL_MODEL);
  if (done) saveModelFolder(modelDir, st.model.cfg, st.model.params.flat as Float32Array, { files, ...(cfg.dtype ? { dtype: cfg.dtype } : {}) });
  bar.finish(`loss ${lastLoss.toFixed(4)}`);
  const summary: TrainSummary = {
    steps: st.step, tokens: st.tokens,
    flops: cfg.stages.reduce((n, s) => n + s.flops, 0),
    seconds: secondsBefore + (Date.now() - started) / 1000, finalLoss: lastLoss,
    valLoss: Object.fromEntries([...lastVal].map(([T, l]) => [String(T), l])),
    stageFlops: cfg.stages.map((s) => ({ seqLen: s.seqLen, steps: s.steps, flops: s.flops })),
    model: done ? modelDir : '', interrupted: !done, ...(!done && stopRequested ? { signal: stopRequested } : {}),
  };
  if (done) writeFileAtomic(path.join(runDir, SUMMARY), JSON.stringify(summary, null, 2) + '\n');
  unlockRun(runDir);
  return summary;
}
