// `longctx pretrain`: a short-context base model on a prepared data folder.

import type { Command } from 'commander';
import { PRESETS } from '../model/config.js';
import { pretrain, resume, PRETRAIN_LR } from '../recipes/pretrain.js';
import { floatArg } from './args.js';
import { addTrainFlags, commonOptions, printSummary, trainEnv, type CommonFlags } from './train-flags.js';

interface Flags extends CommonFlags { preset: string; data?: string; ropeTheta?: number }

export function registerPretrain(program: Command): void {
  const cmd = program
    .command('pretrain')
    .description('train a base model from scratch (short context), writing a run folder with metrics, checkpoints and a final model')
    .option('--preset <name>', `model shape: ${Object.keys(PRESETS).join(', ')} (vocabulary from the data's tokenizer)`, 'tiny')
    .option('--data <dir>', 'prepared data folder (longctx data prepare)')
    .option('--rope-theta <base>', 'RoPE base (default 10000; 500000 trains with ABF from scratch)', floatArg('--rope-theta', 1));
  addTrainFlags(cmd, { lr: String(PRETRAIN_LR) }).action(async (f: Flags) => {
    if (f.resume) return printSummary(await resume(f.resume, trainEnv(f), f.lr !== undefined ? { lr: f.lr } : {}), f.json);
    if (!f.data) throw new Error('--data is required (a folder written by `longctx data prepare`)');
    printSummary(await pretrain({ ...commonOptions(f), preset: f.preset, data: f.data, ropeTheta: f.ropeTheta }, trainEnv(f)), f.json);
  });
}
