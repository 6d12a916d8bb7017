// `longctx init`: a randomly initialised model as a Hugging Face model folder.

import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { PRESETS, llamaConfigToJSON, parseLlamaConfig, presetConfig, type LlamaConfig } from '../model/config.js';
import { createModel, initWeights } from '../model/llama.js';
import { parameterCount } from '../model/params.js';
import { refBackend } from '../kernels/ref/index.js';
import { saveModelFolder } from '../io/hf.js';
import { tokenizerConfigObject } from '../data/tokenizer/load.js';
import { trainBpe } from '../data/tokenizer/train.js';
import { parseSources, readSources } from '../data/sources.js';
import { checkOutFolder, intArg, floatArg, human } from './args.js';
import { tokenizerFromFile } from '../io/gguf-llama.js';

interface InitOptions { preset: string; config?: string; tokenizer?: string; out: string; seed: number; ropeTheta?: number; maxPosition?: number; force: boolean }

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('write a randomly initialised model folder (config.json, model.safetensors, tokenizer.json) that every command accepts')
    .option('--preset <name>', `model shape: ${Object.keys(PRESETS).join(', ')}`, 'tiny')
    .option('--config <file>', 'a Hugging Face config.json to use instead of a preset')
    .option('--tokenizer <path>', 'tokenizer.json (or a folder holding one) to put in the model folder; the vocabulary is sized from it (default: a 512-token BPE trained on the bundled moby-dick)')
    .requiredOption('--out <dir>', 'output model folder')
    .option('--seed <n>', 'initialisation seed', intArg('--seed'), 0)
    .option('--rope-theta <base>', 'override rope_theta (e.g. 500000 for ABF)', floatArg('--rope-theta', 1))
    .option('--max-position <n>', 'override max_position_embeddings', intArg('--max-position', 1))
    .option('--force', 'replace an existing model folder (one with config.json; any other non-empty folder is refused)', false)
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
      // a tokenizer goes in, so eval, chat, serve and export accept the folder: the user's (the
      // vocabulary and special ids follow it), else a small one trained on the bundled corpus
      // (deterministic; ids below every preset's vocabulary)
      const tok = o.tokenizer ? tokenizerFromFile(o.tokenizer) : trainBpe(readSources(parseSources('moby-dick')), { vocabSize: Math.min(512, cfg.vocab_size), kind: 'byte-fallback' }).tokenizer;
      if (o.tokenizer) {
        cfg.vocab_size = tok.vocabSize;
        if (tok.bosId >= 0) cfg.bos_token_id = tok.bosId;
        if (tok.eosId >= 0) cfg.eos_token_id = tok.eosId;
      } else if (cfg.vocab_size < 300) {
        throw new Error(`vocab_size ${cfg.vocab_size} is below the 300 ids of the default tokenizer; pass --tokenizer with one that fits`);
      }
      if (o.ropeTheta !== undefined) cfg.rope_theta = o.ropeTheta;
      if (o.maxPosition !== undefined) cfg.max_position_embeddings = o.maxPosition;
      cfg = parseLlamaConfig(llamaConfigToJSON(cfg), 'init options'); // re-validate after overrides
      checkOutFolder(o.out, o.force, 'config.json', 'model');
      const P = parameterCount(cfg);
      if (P > 2e9) throw new Error(`${o.config ?? `preset ${o.preset}`}: ${human(P)} parameters; init writes fp32 weights and is meant for models up to ~2B (use info for estimates)`);
      const m = createModel(cfg, refBackend);
      initWeights(m, o.seed);
      saveModelFolder(o.out, cfg, m.params.flat as Float32Array, {
        files: { 'tokenizer.json': tok.toJSON(), 'tokenizer_config.json': JSON.stringify(tokenizerConfigObject(tok, { model_max_length: cfg.max_position_embeddings }), null, 2) + '\n' },
      });
      process.stdout.write(`wrote ${o.out}: ${human(P)} parameters, seed ${o.seed}, tokenizer ${o.tokenizer ?? 'trained on moby-dick'} (${tok.vocabSize} ids)\n`);
    });
}
