// `longctx export recipe`: a longctx run's settings (or a plan at scale) as a ready run for the engines
// that train at scale: Megatron-LM (`pretrain_gpt.py` launch scripts) or torchtitan (a TOML job and
// the model flavor it needs). longctx does not grow a distributed trainer; it hands the same recipe
// to the ones that exist.
//
// Every engine setting is listed in settings.json with the field of the recipe it comes from, so a
// reader (and the test suite) can trace each one back to config.resolved.json. A setting an engine
// cannot express (xPos, YaRN, NTK, a fractional Megatron RoPE base, torchtitan's fixed head size...)
// is refused by name, like `export gguf` refuses RoPE variants llama.cpp lacks.
//
// Engine versions the output is written for (flags and keys change between releases):
// - Megatron-LM with Megatron-Core >= 0.14 (megatron/training/arguments.py): `--attention-backend`,
//   `--position-embedding-type rope`, `--rotary-base` (an integer), `--use-rope-scaling`; checkpoint
//   conversion through Megatron-Bridge (examples/conversion/convert_checkpoints.py import / export).
// - torchtitan with TOML job configs (torchtitan/config/job_config.py of the 2025 releases:
//   [model] tokenizer_path, [checkpoint] enable_checkpoint, initial_load_in_hf, last_save_in_hf); the
//   model shape is a Python flavor (TransformerModelArgs), not a TOML key.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LlamaConfig } from '../model/config.js';
import { describeRope } from '../model/rope.js';
import { ropeParamsOf } from '../model/config.js';
import { planLayouts, GPUS } from '../model/scale-plan.js';
import type { ScheduleEntry, Stage } from '../train/curriculum.js';
import type { AdamWConfig } from '../train/adamw.js';
import type { SyntheticOptions } from '../data/synthetic.js';
import type { MixOptions } from '../data/mix.js';
import { writeDirAtomic, writeFileChunks } from '../util/atomic.js';

export type Engine = 'megatron' | 'torchtitan';
export const ENGINES: readonly Engine[] = ['megatron', 'torchtitan'];

/** What a recipe says: the fields of config.resolved.json an engine run needs (a plan builds the same). */
export interface RecipeInput {
  /** where the settings come from: "RUN/config.resolved.json" or "plan" */
  origin: string;
  kind: 'pretrain' | 'extend';
  model: LlamaConfig;
  /** the model folder an extension starts from (null: from scratch) */
  from: string | null;
  schedule: ScheduleEntry[];
  stages: Stage[];
  tokens: number;
  tokensPerStep: number;
  lr: { maxLr: number; minLr: number; warmupSteps: number };
  adam: AdamWConfig;
  seed: number;
  evalEvery: number;
  evalSequences: number;
  checkpointEvery: number;
  /** the data folder (longctx data prepare) whose export the engine reads; null: give your own */
  data: string | null;
  mix: MixOptions;
  synthetic?: SyntheticOptions;
}

export interface RecipeOptions {
  engine: Engine;
  /** the fleet the layout is planned for, e.g. 8xH100 */
  gpus: { count: number; kind: string };
  /** export without the run's synthetic rows (a laptop-scale deviation no engine config carries) */
  withoutSynthetic?: boolean;
}

/** One engine setting and the recipe field it comes from. */
export interface EngineSetting {
  /** the stage it belongs to (1-based; 0: every stage) */
  stage: number;
  /** the flag or TOML key, e.g. "--rotary-base" or "training.seq_len" */
  key: string;
  value: string | number | boolean;
  /**
   * where the value comes from: an expression over the recipe's fields ("model.rope_theta",
   * "tokensPerStep / stages[0].seqLen"), optionally followed by " (why)"; or only "(why)" for a
   * constant of the architecture or the engine
   */
  from: string;
}

export interface EngineRecipe {
  engine: Engine;
  /** the recipe the settings come from (each setting's `from` is an expression over its fields) */
  input: RecipeInput;
  settings: EngineSetting[];
  /** file name -> content, written into the output folder */
  files: Record<string, string>;
  /** what the recipe does not carry, said in the README */
  notCarried: string[];
}

export class RecipeError extends Error {
  override name = 'RecipeError';
}

/** The engine run of a recipe; throws a one-line RecipeError naming what the engine cannot express. */
export function engineRecipe(r: RecipeInput, o: RecipeOptions): EngineRecipe {
  const notCarried: string[] = [];
  if (r.synthetic && r.synthetic.share > 0) {
    if (!o.withoutSynthetic) {
      throw new RecipeError(`${r.origin}: the run trains with synthetic rows (share ${r.synthetic.share}; data/synthetic.ts, a laptop-scale deviation from the paper) that no engine config carries; pass --without-synthetic to export the recipe without them`);
    }
    notCarried.push(`synthetic rows (share ${r.synthetic.share} of the training rows): a laptop-scale deviation (data/synthetic.ts); the exported data holds the documents only`);
  }
  if (!(o.gpus.kind in GPUS)) throw new RecipeError(`--gpus: unknown GPU kind ${o.gpus.kind}`);
  if (r.stages.length > 1) {
    // neither engine continues one run across sequence lengths: Megatron's scheduler counts samples
    // and refuses a checkpoint saved at another global batch size (equal tokens, other sequences per
    // step), torchtitan sizes a checkpoint's RoPE buffer to its one seq_len
    const engine = o.engine === 'megatron' ? "with Megatron-LM's pretrain_gpt.py flags (its learning-rate scheduler counts samples and refuses a checkpoint saved at another global batch size, so the cosine cannot continue across lengths)" : 'in a torchtitan llama3 job (a job trains at one seq_len and sizes its checkpoint\'s RoPE buffer to it)';
    throw new RecipeError(`${r.origin}: a sequence-length curriculum (${r.stages.map((st) => st.seqLen).join(' -> ')}) cannot be expressed ${engine}; export a one-length run`);
  }
  return o.engine === 'megatron' ? megatron(r, o, notCarried) : torchtitan(r, o, notCarried);
}

/** Writes an engine recipe into `out` (atomically, as one folder). */
export function writeEngineRecipe(out: string, e: EngineRecipe): void {
  writeDirAtomic(out, (tmp) => {
    for (const [name, content] of Object.entries(e.files)) writeFileChunks(path.join(tmp, name), content);
    writeFileChunks(path.join(tmp, 'settings.json'), JSON.stringify({ engine: e.engine, input: e.input, settings: e.settings, notCarried: e.notCarried }, null, 2) + '\n');
  });
  for (const name of Object.keys(e.files)) if (name.endsWith('.sh')) fs.chmodSync(path.join(out, name), 0o755);
}

/** The layout (tensor x context parallel) the plan chooses for the longest length on the fleet; data parallel takes the rest. */
function layoutFor(r: RecipeInput, o: RecipeOptions): { tp: number; cp: number; recompute: boolean; why: string } {
  const T = Math.max(...r.stages.map((s) => s.seqLen));
  const best = planLayouts(r.model, T, o.gpus.count, GPUS[o.gpus.kind]!.memoryBytes).best;
  if (!best) throw new RecipeError(`${r.origin}: no layout of ${o.gpus.count} x ${o.gpus.kind} holds this model at ${T} tokens (longctx plan shows the memory); give more or bigger --gpus`);
  return { tp: best.tp, cp: best.cp, recompute: best.recompute, why: `(longctx plan's layout for ${o.gpus.count} x ${o.gpus.kind} at ${T} tokens)` };
}

const sh = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

// ---------------------------------------------------------------------------------------------
// Megatron-LM

function megatron(r: RecipeInput, o: RecipeOptions, notCarried: string[]): EngineRecipe {
  const m = r.model;
  const refuse = (what: string): never => { throw new RecipeError(`${r.origin}: ${what} cannot be expressed with Megatron-LM's pretrain_gpt.py flags`); };
  if (!Number.isInteger(m.rope_theta)) refuse(`RoPE base ${m.rope_theta} (--rotary-base is an integer)`);
  const s = m.rope_scaling;
  const settings: EngineSetting[] = [];
  const add = (stage: number, key: string, value: string | number | boolean, from: string): void => { settings.push({ stage, key, value, from }); };
  // the model
  add(0, '--num-layers', m.num_hidden_layers, 'model.num_hidden_layers');
  add(0, '--hidden-size', m.hidden_size, 'model.hidden_size');
  add(0, '--ffn-hidden-size', m.intermediate_size, 'model.intermediate_size');
  add(0, '--num-attention-heads', m.num_attention_heads, 'model.num_attention_heads');
  if (m.num_key_value_heads !== m.num_attention_heads) {
    add(0, '--group-query-attention', true, 'model.num_key_value_heads < model.num_attention_heads');
    add(0, '--num-query-groups', m.num_key_value_heads, 'model.num_key_value_heads');
  }
  add(0, '--kv-channels', m.head_dim, 'model.head_dim');
  add(0, '--max-position-embeddings', m.max_position_embeddings, 'model.max_position_embeddings');
  add(0, '--position-embedding-type', 'rope', '(RoPE)');
  add(0, '--rotary-base', m.rope_theta, 'model.rope_theta');
  add(0, '--rotary-percent', 1.0, '(RoPE on the whole head)');
  if (s !== null) {
    switch (s.rope_type) {
      case 'linear':
        if (!Number.isInteger(s.factor)) refuse(`position interpolation by ${s.factor} (--rotary-seq-len-interpolation-factor is an integer)`);
        add(0, '--rotary-seq-len-interpolation-factor', s.factor, 'model.rope_scaling.factor (linear)');
        break;
      case 'llama3':
        if (s.low_freq_factor !== 1 || s.high_freq_factor !== 4 || s.original_max_position_embeddings !== 8192) {
          refuse(`Llama 3 RoPE scaling with low/high frequency factors ${s.low_freq_factor}/${s.high_freq_factor} and original length ${s.original_max_position_embeddings} (Megatron takes only --rope-scaling-factor, with Llama 3.1's 1/4/8192)`);
        }
        add(0, '--use-rope-scaling', true, "model.rope_scaling.rope_type === 'llama3'");
        add(0, '--rope-scaling-factor', s.factor, 'model.rope_scaling.factor');
        break;
      default:
        refuse(`RoPE ${describeRope(ropeParamsOf(m))} (Megatron's GPT flags have plain RoPE, integer position interpolation and Llama 3 scaling only)`);
    }
  }
  add(0, '--normalization', 'RMSNorm', '(Llama: RMSNorm)');
  add(0, '--norm-epsilon', m.rms_norm_eps, 'model.rms_norm_eps');
  add(0, '--swiglu', true, '(Llama: SwiGLU)');
  add(0, '--disable-bias-linear', true, '(Llama: no biases)');
  if (!m.tie_word_embeddings) add(0, '--untie-embeddings-and-output-weights', true, '!model.tie_word_embeddings');
  add(0, '--attention-dropout', 0.0, '(Llama: no dropout)');
  add(0, '--hidden-dropout', 0.0, '(Llama: no dropout)');
  add(0, '--init-method-std', m.initializer_range, 'model.initializer_range');
  add(0, '--tokenizer-type', 'HuggingFaceTokenizer', "(the model folder's tokenizer.json)");
  add(0, '--make-vocab-size-divisible-by', m.vocab_size % 128 === 0 ? 128 : 1, 'model.vocab_size % 128 === 0 ? 128 : 1 (the vocabulary kept exact, so the checkpoint converts back)');
  // the optimizer and schedule: one run over every stage, so the schedule spans them all
  const total = r.stages.reduce((n, st) => n + st.steps, 0);
  add(0, '--lr', r.lr.maxLr, 'lr.maxLr');
  add(0, '--min-lr', r.lr.minLr, 'lr.minLr');
  add(0, '--lr-decay-style', 'cosine', '(linear warm-up, then cosine decay to lr.minLr)');
  add(0, '--lr-warmup-iters', r.lr.warmupSteps, 'lr.warmupSteps');
  add(0, '--lr-decay-iters', total, `stages[${r.stages.length - 1}].firstStep + stages[${r.stages.length - 1}].steps (every stage)`);
  add(0, '--optimizer', 'adam', '(AdamW: Megatron\'s adam decouples weight decay)');
  add(0, '--adam-beta1', r.adam.beta1, 'adam.beta1');
  add(0, '--adam-beta2', r.adam.beta2, 'adam.beta2');
  add(0, '--adam-eps', r.adam.eps, 'adam.eps');
  add(0, '--weight-decay', r.adam.weightDecay, 'adam.weightDecay');
  add(0, '--clip-grad', r.adam.gradClip, 'adam.gradClip');
  add(0, '--seed', r.seed, 'seed');
  add(0, '--bf16', true, '(bf16 with fp32 master weights, as longctx plan sizes memory)');
  add(0, '--micro-batch-size', 1, '(one sequence per GPU and micro-step; Megatron accumulates up to the global batch)');
  add(0, '--eval-interval', r.evalEvery, 'evalEvery');
  add(0, '--save-interval', r.checkpointEvery, 'checkpointEvery');
  add(0, '--attention-backend', 'flash', '(the paper trained with FlashAttention)');
  const layout = layoutFor(r, o);
  add(0, '--tensor-model-parallel-size', layout.tp, layout.why);
  add(0, '--context-parallel-size', layout.cp, layout.why);
  if (layout.tp > 1) add(0, '--sequence-parallel', true, layout.why);
  add(0, '--use-distributed-optimizer', true, layout.why + ' (optimizer states sharded over data-parallel ranks)');
  if (layout.recompute) {
    add(0, '--recompute-granularity', 'full', layout.why);
    add(0, '--recompute-method', 'uniform', layout.why);
    add(0, '--recompute-num-layers', 1, layout.why);
  }
  r.stages.forEach((st, i) => {
    const k = i + 1;
    add(k, '--seq-length', st.seqLen, `stages[${i}].seqLen`);
    add(k, '--global-batch-size', st.batchSize, `tokensPerStep / stages[${i}].seqLen (= stages[${i}].batchSize)`);
    add(k, '--train-iters', st.firstStep + st.steps, `stages[${i}].firstStep + stages[${i}].steps (the step this stage ends at)`);
    add(k, '--eval-iters', Math.max(1, Math.ceil(r.evalSequences / st.batchSize)), `max(1, ceil(evalSequences / stages[${i}].batchSize)) (held-out sequences per validation)`);
  });
  notCarried.push(`the learning-rate schedule to within one step: Megatron counts a step as done before it computes its rate (step k of the cosine is longctx's step k - 1)`);
  if (r.mix.sourceWeights || r.mix.upsampleFactor) notCarried.push('nothing of the mix: it is applied when the data is exported (the .bin/.idx hold one epoch of it in order)');

  const global = settings.filter((x) => x.stage === 0);
  const files: Record<string, string> = {};
  const flagLines = (xs: EngineSetting[]): string[] => xs.map((x) => (x.value === true ? `  ${x.key}` : `  ${x.key} ${sh(String(x.value))}`));
  r.stages.forEach((st, i) => {
    const k = i + 1;
    const mine = settings.filter((x) => x.stage === k);
    const lines = [
      '#!/usr/bin/env bash',
      `# Stage ${k} of ${r.stages.length}: ${st.steps} steps at ${st.seqLen} tokens (steps ${st.firstStep + 1}-${st.firstStep + st.steps}). Written by longctx export recipe from ${r.origin}.`,
      '# Set MEGATRON (a Megatron-LM checkout), GPUS (per node), DATA (the data export prefix), TOKENIZER (the model folder), CKPT (the checkpoint folder).',
      'set -euo pipefail',
      ': "${MEGATRON:?set MEGATRON to a Megatron-LM checkout}" "${DATA:?set DATA to the prefix longctx data export wrote}" "${TOKENIZER:?set TOKENIZER to the model folder with tokenizer.json}" "${CKPT:?set CKPT to the checkpoint folder}"',
      `torchrun --nproc-per-node "\${GPUS:-${Math.min(8, o.gpus.count)}}" "$MEGATRON/pretrain_gpt.py" \\`,
      ...[...flagLines(global), ...flagLines(mine),
        '  --tokenizer-model "$TOKENIZER"',
        '  --train-data-path "${DATA}_train_text_document"',
        '  --valid-data-path "${DATA}_val_text_document"',
        '  --save "$CKPT"',
        '  --load "$CKPT"',
        ...(k === 1 && r.from !== null ? ['  --finetune', '  --no-load-optim', '  --no-load-rng'] : []),
      ].map((l, j, a) => (j < a.length - 1 ? `${l} \\` : l)),
      '',
    ];
    files[`stage-${k}.sh`] = lines.join('\n');
  });
  files['README.md'] = megatronReadme(r, o, notCarried);
  return { engine: 'megatron', input: r, settings, files, notCarried };
}

function megatronReadme(r: RecipeInput, o: RecipeOptions, notCarried: string[]): string {
  const from = r.from ?? 'MODEL';
  const stages = r.stages.map((st, i) => `bash stage-${i + 1}.sh    # ${st.steps} steps at ${st.seqLen} tokens, ${st.batchSize} sequences (${r.tokensPerStep.toLocaleString('en-US')} tokens) per step`);
  return [
    `# ${r.kind === 'extend' ? 'Continual pretraining' : 'Pretraining'} with Megatron-LM: the longctx recipe of ${r.origin}`,
    '',
    `Model: ${r.model.num_hidden_layers} layers, hidden ${r.model.hidden_size}, ${describeRope(ropeParamsOf(r.model))}; ${r.tokens.toExponential(3)} tokens in ${r.stages.length} stage(s); planned for ${o.gpus.count} x ${o.gpus.kind}.`,
    '',
    '```sh',
    '# 1. the data, with the run\'s mix and long-document up-sampling applied (Megatron indexed datasets)',
    r.data !== null && r.origin !== 'plan' ? `npx longctx data export --from-run ${sh(path.dirname(r.origin))} --format megatron --out data/longctx` : 'npx longctx data export DATA_FOLDER --format megatron --out data/longctx    # your prepared data',
    'export DATA=$PWD/data/longctx TOKENIZER=' + sh(from) + ' CKPT=$PWD/checkpoints MEGATRON=/path/to/Megatron-LM',
    ...(r.from !== null ? [
      '# 2. the starting checkpoint: Hugging Face folder -> Megatron (Megatron-Bridge)',
      `python Megatron-Bridge/examples/conversion/convert_checkpoints.py import --hf-model ${sh(from)} --megatron-path "$CKPT" --torch-dtype bfloat16`,
    ] : ['# 2. from scratch: no starting checkpoint']),
    '# 3. train',
    ...stages,
    '# 4. back to a Hugging Face folder, for longctx eval and everything else',
    `python Megatron-Bridge/examples/conversion/convert_checkpoints.py export --hf-model ${sh(from)} --megatron-path "$CKPT" --hf-path out-hf`,
    'npx longctx eval out-hf --tasks ppl,passkey --max-len ' + Math.max(...r.stages.map((s) => s.seqLen)),
    '```',
    '',
    'Every flag and the recipe field it comes from: settings.json. Written for Megatron-Core >= 0.14 (`--attention-backend`); `--rotary-base` is read at launch (the HF converter does not carry rope_theta).',
    ...(r.from !== null ? ['', 'The run loads the converted model with `--finetune --no-load-optim --no-load-rng` (a fresh optimizer and step counter, as longctx extend does): relaunch an interrupted run without those three flags, so it resumes its own checkpoint.'] : []),
    '',
    'Not carried:',
    ...notCarried.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// torchtitan

function torchtitan(r: RecipeInput, o: RecipeOptions, notCarried: string[]): EngineRecipe {
  const m = r.model;
  const refuse = (what: string): never => { throw new RecipeError(`${r.origin}: ${what} cannot be expressed in a torchtitan llama3 job`); };
  if (m.rope_scaling !== null) refuse(`RoPE ${describeRope(ropeParamsOf(m))} (torchtitan's llama3 model has plain RoPE with a base)`);
  if (m.head_dim * m.num_attention_heads !== m.hidden_size) refuse(`head size ${m.head_dim} with ${m.num_attention_heads} heads and hidden size ${m.hidden_size} (torchtitan derives the head size as dim / n_heads)`);
  if (m.tie_word_embeddings) refuse('tied input and output embeddings');
  const st = r.stages[0]!;
  const settings: EngineSetting[] = [];
  const add = (key: string, value: string | number | boolean, from: string): void => { settings.push({ stage: 0, key, value, from }); };
  // FFN size: torchtitan computes multiple_of * ceil(int(ffn_dim_multiplier * int(8 dim / 3)) / multiple_of)
  const h = Math.floor((8 * m.hidden_size) / 3);
  const plain = [1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1].find((mo) => m.intermediate_size % mo === 0 && Math.ceil(h / mo) * mo === m.intermediate_size);
  const flavor = 'longctx';
  add('model.dim', m.hidden_size, 'model.hidden_size');
  add('model.n_layers', m.num_hidden_layers, 'model.num_hidden_layers');
  add('model.n_heads', m.num_attention_heads, 'model.num_attention_heads');
  add('model.n_kv_heads', m.num_key_value_heads, 'model.num_key_value_heads');
  add('model.vocab_size', m.vocab_size, 'model.vocab_size');
  if (plain !== undefined) {
    add('model.multiple_of', plain, '(the multiple_of for which torchtitan\'s multiple_of * ceil(int(8 * dim / 3) / multiple_of) is model.intermediate_size)');
  } else {
    add('model.multiple_of', 1, '(model.intermediate_size set exactly through ffn_dim_multiplier)');
    add('model.ffn_dim_multiplier', (m.intermediate_size + 0.5) / h, '(model.intermediate_size + 0.5) / floor(8 * model.hidden_size / 3) (torchtitan truncates its product to model.intermediate_size)');
  }
  add('model.norm_eps', m.rms_norm_eps, 'model.rms_norm_eps');
  add('model.rope_theta', m.rope_theta, 'model.rope_theta');
  add('model.max_seq_len', st.seqLen, 'stages[0].seqLen');
  const layout = layoutFor(r, o);
  add('model.tokenizer_path', r.from ?? 'TOKENIZER', r.from !== null ? "from (the model folder's tokenizer)" : '(your tokenizer)');
  add('job.description', `longctx recipe of ${r.origin}`, "'longctx recipe of ' + origin");
  add('model.name', 'llama3', '(the Llama architecture)');
  add('model.flavor', flavor, '(flavor.py)');
  add('optimizer.name', 'AdamW', '(AdamW)');
  add('optimizer.lr', r.lr.maxLr, 'lr.maxLr');
  add('optimizer.beta1', r.adam.beta1, 'adam.beta1');
  add('optimizer.beta2', r.adam.beta2, 'adam.beta2');
  add('optimizer.eps', r.adam.eps, 'adam.eps');
  add('optimizer.weight_decay', r.adam.weightDecay, 'adam.weightDecay');
  add('lr_scheduler.warmup_steps', r.lr.warmupSteps, 'lr.warmupSteps');
  add('lr_scheduler.decay_type', 'cosine', '(cosine decay to lr.minLr)');
  add('lr_scheduler.min_lr_factor', r.lr.minLr / r.lr.maxLr, 'lr.minLr / lr.maxLr');
  add('training.seq_len', st.seqLen, 'stages[0].seqLen');
  add('training.global_batch_size', st.batchSize, 'tokensPerStep / stages[0].seqLen (= stages[0].batchSize)');
  add('training.local_batch_size', 1, '(one sequence per GPU and micro-step; torchtitan accumulates up to the global batch)');
  add('training.steps', st.steps, 'stages[0].steps');
  add('training.max_norm', r.adam.gradClip, 'adam.gradClip');
  add('training.seed', r.seed, 'seed');
  add('training.dataset', 'c4_test', '(torchtitan\'s plain loader: load_dataset(path) with a "text" field, what data export --format jsonl writes)');
  add('training.dataset_path', 'data', '(the folder the README moves data export --format jsonl\'s training file into)');
  add('training.mixed_precision_param', 'bfloat16', '(bf16 with fp32 master weights)');
  add('parallelism.data_parallel_shard_degree', -1, layout.why + ' (the GPUs left)');
  add('parallelism.tensor_parallel_degree', layout.tp, layout.why);
  add('parallelism.context_parallel_degree', layout.cp, layout.why);
  add('activation_checkpoint.mode', layout.recompute ? 'full' : 'selective', layout.why);
  add('checkpoint.enable_checkpoint', true, '(checkpoints every checkpointEvery steps)');
  add('checkpoint.interval', r.checkpointEvery, 'checkpointEvery');
  add('checkpoint.last_save_in_hf', true, '(the trained model as a Hugging Face folder)');
  add('checkpoint.last_save_model_only', true, '(the trained model as a Hugging Face folder)');
  add('checkpoint.export_dtype', 'bfloat16', '(the trained model as a Hugging Face folder)');
  if (r.from !== null) {
    add('checkpoint.initial_load_path', r.from, 'from');
    add('checkpoint.initial_load_in_hf', true, 'from !== null (a Hugging Face folder)');
    add('checkpoint.initial_load_model_only', true, 'from !== null (weights only: a fresh optimizer, as longctx extend does)');
  }
  add('validation.enabled', true, '(validation every evalEvery steps)');
  add('validation.freq', r.evalEvery, 'evalEvery');
  add('validation.steps', Math.max(1, Math.ceil(r.evalSequences / st.batchSize)), 'max(1, ceil(evalSequences / stages[0].batchSize)) (held-out sequences per validation)');
  add('validation.dataset', 'c4_test', '(the held-out split of data export --format jsonl)');
  add('validation.dataset_path', 'data-val', '(the folder the README moves the held-out split into)');
  if (r.mix.sourceWeights || r.mix.upsampleFactor) notCarried.push('nothing of the mix: it is applied when the data is exported (the JSONL holds one epoch of it in order)');
  notCarried.push('the exact data order: torchtitan reads the exported epoch through its own loader and shuffling');

  // the TOML: sections in order, keys as added
  const sections = new Map<string, string[]>();
  for (const x of settings) {
    const [sec, key] = x.key.split('.') as [string, string];
    if (sec === 'model' && key !== 'name' && key !== 'flavor' && key !== 'tokenizer_path') continue; // the shape lives in flavor.py
    const v = typeof x.value === 'string' ? JSON.stringify(x.value) : String(x.value);
    if (!sections.has(sec)) sections.set(sec, []);
    sections.get(sec)!.push(`${key} = ${v}`);
  }
  const toml = [`# torchtitan job: the longctx recipe of ${r.origin} (every key and its source: settings.json)`, `# Launch: CONFIG_FILE=./job.toml ./run_train.sh (from a torchtitan checkout with flavor.py's entry added)`, ''];
  for (const [sec, lines] of sections) toml.push(`[${sec}]`, ...lines, '');
  const shape = settings.filter((x) => x.key.startsWith('model.') && !['model.name', 'model.flavor', 'model.tokenizer_path'].includes(x.key));
  const flavorPy = [
    `# The model shape of ${r.origin} as a torchtitan llama3 flavor: add this entry to llama3_configs in`,
    '# torchtitan/models/llama3/__init__.py (a job picks its flavor by name; TOML cannot set a shape).',
    'from torchtitan.models.llama3.model.args import TransformerModelArgs',
    '',
    'args = TransformerModelArgs(',
    ...shape.map((x) => `    ${x.key.slice('model.'.length)}=${String(x.value)},`),
    ')',
    '# Plain RoPE with the base above: torchtitan releases since mid-2025 default rope_scaling_args to',
    '# Llama 3.1\'s scaling (factor 8 from 8,192 positions), which would silently change the recipe\'s',
    '# positions; older ones have no such field.',
    'if hasattr(args, "rope_scaling_args"):',
    '    args.rope_scaling_args = None',
    `llama3_configs["${flavor}"] = args`,
    '',
  ].join('\n');
  const readme = [
    `# ${r.kind === 'extend' ? 'Continual pretraining' : 'Pretraining'} with torchtitan: the longctx recipe of ${r.origin}`,
    '',
    `Model: ${m.num_hidden_layers} layers, hidden ${m.hidden_size}, ${describeRope(ropeParamsOf(m))}; ${st.steps} steps at ${st.seqLen} tokens; planned for ${o.gpus.count} x ${o.gpus.kind}.`,
    '',
    '```sh',
    '# 1. the data as JSONL with a "text" field, the run\'s mix applied',
    r.data !== null && r.origin !== 'plan' ? `npx longctx data export --from-run ${sh(path.dirname(r.origin))} --format jsonl --out longctx` : 'npx longctx data export DATA_FOLDER --format jsonl --out longctx',
    'mkdir -p data data-val && mv longctx_train.jsonl data/ && mv longctx_val.jsonl data-val/',
    '# 2. the model shape: add flavor.py\'s entry to torchtitan/models/llama3/__init__.py ([model] tokenizer_path in job.toml names the tokenizer)',
    `# 3. train${r.from !== null ? ` (job.toml loads ${r.from} as a Hugging Face folder)` : ''}`,
    'CONFIG_FILE=./job.toml ./run_train.sh',
    '# 4. the last checkpoint is saved as a Hugging Face folder (checkpoint.last_save_in_hf); evaluate it',
    `npx longctx eval outputs/checkpoint/step-${st.steps} --tasks ppl,passkey --max-len ${st.seqLen}`,
    '```',
    '',
    'Written for torchtitan\'s TOML job configs (2025); later releases renamed keys (tokenizer_path -> hf_assets_path, enable_checkpoint -> enable) and moved to Python configs.',
    '',
    'Not carried:',
    ...notCarried.map((n) => `- ${n}`),
    '',
  ].join('\n');
  return { engine: 'torchtitan', input: r, settings, files: { 'job.toml': toml.join('\n'), 'flavor.py': flavorPy, 'README.md': readme }, notCarried };
}
