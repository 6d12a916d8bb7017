// Flags shared by `pretrain` and `extend`: schedule, budget, optimizer, evaluation, checkpoints, mix.

import type { Command } from 'commander';
import { addKernelsFlag, checkFolderPath, intArg, floatArg, intListArg, kernelsFlag, precisionOption } from './args.js';
import { parseSourceWeights, parseUpsample } from '../data/mix.js';
import type { CommonOptions } from '../recipes/pretrain.js';
import type { TrainEnv, TrainSummary } from '../train/trainer.js';
import { readRunConfig, RESOLVED_CONFIG } from '../train/run.js';
import { definedOnly } from '../util/defined.js';
import { InvalidArgumentError, Option } from 'commander';
import { WEIGHT_DTYPES, type WeightDtype } from '../model/config.js';

const DTYPE_ALIASES: Record<string, WeightDtype> = { float32: 'float32', f32: 'float32', fp32: 'float32', bfloat16: 'bfloat16', bf16: 'bfloat16', float16: 'float16', f16: 'float16', fp16: 'float16' };

/** --dtype: a torch dtype name or its short form. */
export function dtypeArg(v: string): WeightDtype {
  const d = DTYPE_ALIASES[v.toLowerCase()];
  if (!d) throw new InvalidArgumentError(`--dtype must be one of ${WEIGHT_DTYPES.join(', ')} (or bf16, f16, f32), got "${v}"`);
  return d;
}

export interface CommonFlags {
  out?: string; seqLen?: number; schedule?: string; tokens?: number; tokensPerStep?: number; lr?: number; minLr?: number;
  warmup?: number; seed: number; evalEvery?: number; evalSequences: number; evalLengths?: number[]; evalLens?: number[]; checkpointEvery?: number;
  keepCheckpoints: number; microBatch?: number; dtype?: WeightDtype; mix?: string; upsample?: string; synthetic?: number; syntheticFirst?: number; syntheticRecall?: number; syntheticPasskey?: number; syntheticFirstSentence?: number; json: boolean; resume?: string; kernels?: string; precision?: string;
}

/**
 * The flags every training command has, pretrain / extend and instruct train alike: the schedule's
 * floor and warm-up, checkpoints, micro-batching and the compute kernels.
 */
export function addRunFlags(cmd: Command): Command {
  return addKernelsFlag(cmd)
    .addOption(precisionOption())
    .option('--min-lr <x>', 'cosine floor (default lr/10)', floatArg('--min-lr', 0))
    .option('--warmup <steps>', 'linear warm-up steps (default 5% of the run)', intArg('--warmup', 0))
    .option('--checkpoint-every <steps>', 'checkpoint interval (default: 10 per run)', intArg('--checkpoint-every', 1))
    .option('--dtype <name>', 'what the final model\'s weights are stored as: float32, bfloat16 or float16 (bf16, f16, f32 too; default: pretrain float32, extend and instruct train the base\'s; checkpoints stay float32)', dtypeArg)
    .option('--keep-checkpoints <n>', 'checkpoints kept on disk', intArg('--keep-checkpoints', 1), 2)
    .option('--micro-batch <n>', 'sequences per forward/backward (default: as many as memory allows, up to ~16k tokens)', intArg('--micro-batch', 1));
}

export function addTrainFlags(cmd: Command, defaults: { lr: string }): Command {
  return addRunFlags(cmd)
    .option('--out <dir>', 'run folder to create (required unless --resume)')
    .option('--seq-len <n>', 'train at one sequence length (same as --schedule N)', intArg('--seq-len', 1))
    .option('--schedule <list>', 'length curriculum LENGTH:SHARE,... e.g. 256:0.8,2048:0.2 (paper §4.4)')
    .option('--tokens <n>', 'training tokens in total (required unless --resume)', intArg('--tokens', 1))
    .option('--tokens-per-step <n>', 'tokens per optimizer step, constant across lengths (default max(8192, 4 x longest length); extend: the base run\'s)', intArg('--tokens-per-step', 1))
    .option('--lr <x>', `peak learning rate (default ${defaults.lr})`, floatArg('--lr', 0))
    .option('--seed <n>', 'seed for initialisation and data order', intArg('--seed', 0), 0)
    .option('--eval-every <steps>', 'validation interval (default: 10 evaluations per run)', intArg('--eval-every', 1))
    .option('--eval-sequences <n>', 'held-out sequences per length for validation', intArg('--eval-sequences', 1), 8)
    .option('--eval-lengths <list>', 'validation lengths, in tokens (default: every length of the schedule; extend adds the base length)', intListArg('--eval-lengths'))
    .addOption(new Option('--eval-lens <list>').argParser(intListArg('--eval-lens')).hideHelp()) // the older name

    .option('--mix <list>', 'mix weights per source, e.g. moby-dick=2,sotu=1 (as in `data stats --mix`)')
    .option('--upsample <spec>', 'up-sample documents longer than LENGTH by FACTOR, e.g. 2048x3 (the paper up-weights long texts)')
    .option('--synthetic <share>', 'replace this share of training rows by repeat rows (a training passage or random tokens, repeated after a gap, scored on the repeat only; our deviation from the paper: it teaches a small model to copy from context), e.g. 0.5', floatArg('--synthetic', 0))
    .option('--synthetic-recall <share>', 'make this share of the synthetic rows key-value recall rows (facts hidden in filler, asked again at the row\'s end: the passkey test in general form), e.g. 0.5', floatArg('--synthetic-recall', 0))
    .option('--synthetic-passkey <share>', 'make this share of the synthetic rows passkey rows (the passkey test\'s format with training text as filler, scored on the answer only), e.g. 0.25', floatArg('--synthetic-passkey', 0))
    .option('--synthetic-first-sentence <share>', 'make this share of the synthetic rows first-sentence rows (training text from a sentence start, then "Repeat the first sentence of the text above:" and that sentence, scored on the answer only), e.g. 0.25', floatArg('--synthetic-first-sentence', 0))
    .option('--synthetic-first <steps>', 'make every row of the first STEPS optimizer steps a repeat row (forms the copying circuit before the language statistics crowd it out)', intArg('--synthetic-first', 0))
    .option('--resume <run>', 'continue RUN from its last checkpoint (same data order and RNG); of the other flags only --lr applies (a new peak learning rate from the checkpoint on, recorded in the run)')
    .option('--json', 'JSON lines (metrics) on stdout instead of a progress bar', false);
}

/**
 * Where the run computes (--kernels, resolved here once) and how it reports. A --resume keeps the
 * run's recorded precision: a --precision that says otherwise is named and ignored.
 */
export function trainEnv(f: { kernels?: string; precision?: string; json: boolean; resume?: string }): TrainEnv {
  if (f.resume && f.precision !== undefined) {
    const recorded = readRunConfig(f.resume).precision ?? 'fp32';
    if (recorded !== f.precision) process.stderr.write(`${f.resume}: the run computes in ${recorded} (recorded in ${RESOLVED_CONFIG}); --precision ${f.precision} is ignored on --resume\n`);
  }
  return { backend: kernelsFlag(f), json: f.json };
}

export function commonOptions(f: CommonFlags): CommonOptions {
  if (!f.out) throw new Error('--out is required (the run folder to create)');
  checkFolderPath(f.out);
  if (f.tokens === undefined) throw new Error('--tokens is required (training tokens in total)');
  const schedule = f.schedule ?? (f.seqLen !== undefined ? String(f.seqLen) : undefined);
  if (!schedule) throw new Error('give --seq-len N or --schedule LENGTH:SHARE,...');
  if (f.schedule && f.seqLen !== undefined) throw new Error('give either --seq-len or --schedule, not both');
  return {
    out: f.out, schedule, tokens: f.tokens, tokensPerStep: f.tokensPerStep, lr: f.lr, minLr: f.minLr, warmup: f.warmup,
    seed: f.seed, evalEvery: f.evalEvery, evalSequences: f.evalSequences, evalLengths: f.evalLengths ?? f.evalLens,
    checkpointEvery: f.checkpointEvery, keepCheckpoints: f.keepCheckpoints, microBatch: f.microBatch,
    ...definedOnly({ dtype: f.dtype, synthetic: f.synthetic, syntheticFirst: f.syntheticFirst, syntheticRecall: f.syntheticRecall, syntheticPasskey: f.syntheticPasskey, syntheticFirstSentence: f.syntheticFirstSentence }),
    mix: {
      ...(f.mix ? { sourceWeights: parseSourceWeights(f.mix) } : {}),
      ...(f.upsample ? parseUpsample(f.upsample) : {}),
    },
  };
}

/**
 * A run stopped by Ctrl-C or SIGTERM (checkpointed, resumable) still ends as an interrupted command:
 * 130 / 143, so that `longctx pretrain ... && longctx extend ...` does not go on with a half-trained run.
 */
export function exitCodeOfStop(s: Pick<TrainSummary, 'signal'>): void {
  if (s.signal) process.exitCode = s.signal === 'SIGINT' ? 130 : 143;
}

export function printSummary(s: TrainSummary, json: boolean, extra: Record<string, unknown> = {}): void {
  exitCodeOfStop(s);
  if (json) {
    process.stdout.write(JSON.stringify({ type: 'summary', ...s, ...extra }) + '\n');
    return;
  }
  const val = Object.entries(s.valLoss).map(([T, l]) => `${T}: ${l.toFixed(4)}`).join(', ');
  process.stdout.write(`${s.interrupted ? 'stopped' : 'done'}: ${s.steps} steps, ${s.tokens} tokens, ${(s.flops / 1e12).toFixed(3)} TFLOPs planned, ${s.seconds.toFixed(0)} s; ` +
    `last train loss ${s.finalLoss.toFixed(4)}; validation loss by length {${val}}${s.model ? `; model in ${s.model}` : ''}\n`);
  for (const [k, v] of Object.entries(extra)) process.stdout.write(`${k}: ${JSON.stringify(v)}\n`);
}
