// `longctx export gguf MODEL --out FILE`: a model folder as a llama.cpp GGUF file.

import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { exportGguf, GGUF_WEIGHT_TYPES, type GgufWeightType } from '../io/gguf-llama.js';
import { readGgufHeader } from '../io/gguf.js';
import { bytes, checkOutFolder, floatArg, intArg } from './args.js';
import { resolveModelDir } from '../eval/open.js';
import { engineRecipe, writeEngineRecipe, ENGINES, type Engine, type RecipeInput } from '../recipes/engine-recipe.js';
import { readRunConfig } from '../train/run.js';
import { parseSchedule, planStages } from '../train/curriculum.js';
import { llamaAdamW } from '../train/adamw.js';
import { parseGpus } from '../model/scale-plan.js';
import { PRESETS, presetConfig } from '../model/config.js';
import { readModelConfig } from '../io/hf.js';
import path from 'node:path';

interface ExportGgufFlags { out: string; type?: string; f16: boolean; name?: string; force: boolean; json: boolean }

export function registerExport(program: Command): void {
  const exp = program.command('export').description('convert a model folder to another format (gguf: for llama.cpp), or a run\'s recipe to an engine at scale (recipe: Megatron-LM, torchtitan)');
  exp
    .command('gguf')
    .description(
      'write a llama.cpp GGUF file: llama.* metadata (RoPE base and scaling included), the tokenizer ' +
        '(tokenizer.ggml.* and the original tokenizer.json), F32 tensors (or --type) with llama.cpp names and q/k ' +
        'permuted to its interleaved RoPE layout. RoPE variants llama.cpp cannot compute (dynamic NTK, ' +
        'LongRoPE, xPos, YaRN with custom attention factor or betas) are refused.',
    )
    .argument('<model>', 'model folder (config.json, model.safetensors, tokenizer.json) or a run folder with model/')
    .requiredOption('--out <file>', 'output .gguf file (written atomically)')
    .option('--type <type>', `what matrices are stored as: ${GGUF_WEIGHT_TYPES.map((t) => t.toLowerCase()).join(', ')} (default f32; norms stay F32; a matrix whose rows a quant's block does not divide is stored Q8_0, else F16)`)
    .option('--f16', 'same as --type f16', false)
    .option('--name <name>', 'general.name (default: the folder name)')
    .option('--force', 'replace an existing output file', false)
    .option('--json', 'print the summary as JSON', false)
    .action((model: string, f: ExportGgufFlags) => {
      if (existsSync(f.out) && !f.force) throw new Error(`${f.out} exists; choose another --out or pass --force to replace it`);
      const type = f.type === undefined ? (f.f16 ? 'F16' : 'F32') : (f.type.toUpperCase() as GgufWeightType);
      if (!GGUF_WEIGHT_TYPES.includes(type)) throw new Error(`--type: unknown type "${f.type}" (choose from ${GGUF_WEIGHT_TYPES.map((t) => t.toLowerCase()).join(', ')})`);
      if (f.f16 && type !== 'F16') throw new Error(`--f16 and --type ${f.type} disagree; give one`);
      const summary = exportGguf(resolveModelDir(model), f.out, { type, ...(f.name !== undefined ? { name: f.name } : {}) });
      readGgufHeader(f.out); // read back what was written: a writer bug fails here, not in llama.cpp
      if (f.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      else {
        const fb = summary.fallbacks.length > 0 ? `; ${summary.fallbacks.length} stored ${[...new Set(summary.fallbacks.map((x) => x.type))].join('/')} (rows not a multiple of the ${summary.fileType} block)` : '';
        process.stdout.write(`wrote ${f.out}: ${summary.tensors} tensors (${summary.fileType}${fb}), ${summary.metadata} metadata keys, ${bytes(summary.bytes)}, ${summary.rope}\n`);
      }
    });

  exp
    .command('recipe')
    .description(
      'write a run\'s settings (or a plan at scale) as a ready run for Megatron-LM (a pretrain_gpt.py launch script) ' +
        'or torchtitan (a TOML job and the model flavor), with the data export and checkpoint conversion ' +
        'commands in a README and every setting traced to its source field in settings.json; settings the engine cannot ' +
        'express are refused by name',
    )
    .argument('[run]', 'a pretrain or extend run folder (its config.resolved.json); without it, a plan from --model and the flags below')
    .requiredOption('--engine <name>', `${ENGINES.join(' or ')}`)
    .requiredOption('--out <dir>', 'folder to write (atomically)')
    .option('--gpus <COUNTxKIND>', 'the fleet the parallel layout is planned for (longctx plan)', '8xH100')
    .option('--without-synthetic', 'export a run that trained with synthetic rows without them (no engine config carries them)', false)
    .option('--force', 'replace an existing output folder', false)
    .option('--model <name|dir>', `plan: a preset (${Object.keys(PRESETS).join(', ')}) or a model folder (config.json)`)
    .option('--from-hf <dir>', 'plan: the Hugging Face folder the run starts from (continual pretraining; without it, from scratch)')
    .option('--rope-theta <base>', 'plan: the RoPE base to train with (paper: 500000)', floatArg('--rope-theta', 1))
    .option('--seq-len <n>', 'plan: training sequence length', intArg('--seq-len', 1))
    .option('--schedule <list>', 'plan: length curriculum LENGTH:SHARE,... instead of --seq-len')
    .option('--tokens <n>', 'plan: training tokens (paper: 400e9)', floatArg('--tokens', 1))
    .option('--tokens-per-step <n>', 'plan: tokens per optimizer step (paper: 4194304)', intArg('--tokens-per-step', 1), 4194304)
    .option('--lr <x>', 'plan: peak learning rate (paper: 2e-5 for 7B/13B)', floatArg('--lr', 0), 2e-5)
    .option('--min-lr <x>', 'plan: cosine floor (default lr/10)', floatArg('--min-lr', 0))
    .option('--warmup <steps>', 'plan: warm-up steps (paper: 2000)', intArg('--warmup', 0), 2000)
    .option('--seed <n>', 'plan: seed', intArg('--seed', 0), 0)
    .action((run: string | undefined, f: RecipeFlags) => {
      if (!(ENGINES as readonly string[]).includes(f.engine)) throw new Error(`--engine must be ${ENGINES.join(' or ')}, got "${f.engine}"`);
      checkOutFolder(f.out, f.force, 'settings.json', 'recipe');
      const input = run !== undefined ? recipeOfRun(run, f) : recipeOfPlan(f);
      const e = engineRecipe(input, { engine: f.engine as Engine, gpus: parseGpus(f.gpus), withoutSynthetic: f.withoutSynthetic });
      writeEngineRecipe(f.out, e);
      process.stdout.write(`wrote ${f.out}: ${Object.keys(e.files).concat('settings.json').join(', ')} (${e.settings.length} ${f.engine} settings from ${input.origin}); see ${path.join(f.out, 'README.md')}\n`);
    });
}

interface RecipeFlags {
  engine: string; out: string; gpus: string; withoutSynthetic: boolean; force: boolean;
  model?: string; fromHf?: string; ropeTheta?: number; seqLen?: number; schedule?: string; tokens?: number; tokensPerStep: number; lr: number; minLr?: number; warmup: number; seed: number;
}

const PLAN_FLAGS = ['model', 'fromHf', 'ropeTheta', 'seqLen', 'schedule', 'tokens', 'minLr'] as const;

/** A run folder's recipe: config.resolved.json as it is. */
function recipeOfRun(run: string, f: RecipeFlags): RecipeInput {
  const given = PLAN_FLAGS.filter((k) => f[k] !== undefined);
  if (given.length > 0) throw new Error(`--${given[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for a plan; a run's recipe is its config.resolved.json (drop the flag or the run)`);
  const cfg = readRunConfig(run);
  if (cfg.kind === 'instruct') throw new Error(`${run} is an instruction-tuning run; export recipe carries pretraining and continual pretraining runs`);
  return {
    origin: path.join(run, 'config.resolved.json'), kind: cfg.kind, model: cfg.model, from: cfg.from, schedule: cfg.schedule, stages: cfg.stages,
    tokens: cfg.tokens, tokensPerStep: cfg.tokensPerStep, lr: cfg.lr, adam: cfg.adam, seed: cfg.seed, evalEvery: cfg.evalEvery,
    evalSequences: cfg.evalSequences, checkpointEvery: cfg.checkpointEvery, data: cfg.data, mix: cfg.mix, ...(cfg.synthetic ? { synthetic: cfg.synthetic } : {}),
  };
}

/** A plan at scale: the paper's continual pretraining by default (4M tokens per step, lr 2e-5, 2,000 warm-up steps, Llama 2's AdamW). */
function recipeOfPlan(f: RecipeFlags): RecipeInput {
  if (f.model === undefined) throw new Error('give a run folder, or --model (and --tokens) for a plan');
  if (f.tokens === undefined) throw new Error('a plan needs --tokens (the paper: 400e9)');
  if (f.seqLen !== undefined && f.schedule !== undefined) throw new Error('give either --seq-len or --schedule, not both');
  // --from-hf may be a hub id (meta-llama/Llama-2-7b-hf) the engine's converter downloads: the shape comes from --model then
  const base = f.fromHf !== undefined && existsSync(f.fromHf) ? readModelConfig(f.fromHf) : f.model in PRESETS ? presetConfig(f.model) : readModelConfig(f.model);
  const schedule = f.schedule !== undefined ? parseSchedule(f.schedule) : [{ seqLen: f.seqLen ?? base.max_position_embeddings, share: 1 }];
  const T = Math.max(...schedule.map((e) => e.seqLen));
  const model = { ...base, rope_theta: f.ropeTheta ?? base.rope_theta, max_position_embeddings: Math.max(T, base.max_position_embeddings) };
  const stages = planStages(schedule, f.tokens, f.tokensPerStep, model);
  const steps = stages.reduce((n, s) => n + s.steps, 0);
  if (f.warmup >= steps) throw new Error(`--warmup ${f.warmup} is not below the ${steps} steps of the plan`);
  return {
    origin: 'plan', kind: f.fromHf !== undefined ? 'extend' : 'pretrain', model, from: f.fromHf ?? null, schedule, stages, tokens: f.tokens, tokensPerStep: f.tokensPerStep,
    lr: { maxLr: f.lr, minLr: f.minLr ?? f.lr / 10, warmupSteps: f.warmup }, adam: llamaAdamW(), seed: f.seed,
    evalEvery: Math.max(1, Math.round(steps / 100)), evalSequences: 64, checkpointEvery: Math.max(1, Math.round(steps / 100)), data: null, mix: {},
  };
}
