// `longctx init`: a randomly initialised model as a Hugging Face model folder.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import type { Command } from 'commander';
import { PRESETS, llamaConfigToJSON, parseLlamaConfig, presetConfig, type LlamaConfig } from '../model/config.js';
import { createModel, initWeights } from '../model/llama.js';
import { parameterCount } from '../model/params.js';
import { refBackend } from '../kernels/ref/index.js';
import { saveModelFolder } from '../io/hf.js';
import { intArg, floatArg, human } from './args.js';

interface InitOptions { preset: string; config?: string; out: string; seed: number; ropeTheta?: number; maxPosition?: number; force: boolean }

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('write a randomly initialised model folder (config.json + model.safetensors)')
    .option('--preset <name>', `model shape: ${Object.keys(PRESETS).join(', ')}`, 'tiny')
    .option('--config <file>', 'a Hugging Face config.json to use instead of a preset')
    .requiredOption('--out <dir>', 'output model folder')
    .option('--seed <n>', 'initialisation seed', intArg('--seed'), 0)
    .option('--rope-theta <base>', 'override rope_theta (e.g. 500000 for ABF)', floatArg('--rope-theta', 1))
    .option('--max-position <n>', 'override max_position_embeddings', intArg('--max-position', 1))
    .option('--force', 'replace a non-empty output folder', false)
    .action((o: InitOptions) => {
      let cfg: LlamaConfig;
      if (o.config) {
        let raw: unknown;
        try {
          raw = JSON.parse(readFileSync(o.config, 'utf8'));
        } catch (e) {
          throw new Error(`${o.config}: cannot read a JSON config (${(e as Error).message})`);
        }
        cfg = parseLlamaConfig(raw, o.config);
      } else {
        cfg = presetConfig(o.preset);
      }
      if (o.ropeTheta !== undefined) cfg.rope_theta = o.ropeTheta;
      if (o.maxPosition !== undefined) cfg.max_position_embeddings = o.maxPosition;
      cfg = parseLlamaConfig(llamaConfigToJSON(cfg), 'init options'); // re-validate after overrides
      if (existsSync(o.out) && readdirSync(o.out).length > 0 && !o.force) {
        throw new Error(`${o.out} exists and is not empty; choose another --out or pass --force to replace it`);
      }
      const P = parameterCount(cfg);
      if (P > 2e9) throw new Error(`preset has ${human(P)} parameters; init writes fp32 weights and is meant for models up to ~2B (use info for estimates)`);
      const m = createModel(cfg, refBackend);
      initWeights(m, o.seed);
      saveModelFolder(o.out, cfg, m.params.flat as Float32Array);
      process.stdout.write(`wrote ${o.out}: ${human(P)} parameters, seed ${o.seed}\n`);
    });
}
