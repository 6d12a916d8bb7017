// `longctx extend`: continual pretraining to a longer context with a new RoPE (the paper's method).

import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { extend, resume } from '../recipes/pretrain.js';
import { addRopeThetaFlag, floatArg, ropeThetaFlag } from './args.js';
import { addTrainFlags, commonOptions, printSummary, trainEnv, type CommonFlags } from './train-flags.js';

interface Flags extends CommonFlags { from?: string; data?: string; rope: string; ropeTheta?: number; theta?: number; factor?: number; scaleBase?: number }

export function registerExtend(program: Command): void {
  const cmd = program
    .command('extend')
    .description('continual pretraining of a base model to a longer context with RoPE ABF or another position encoding')
    .option('--from <run|model>', 'the base: a pretrain run folder (its model/) or a Hugging Face model folder')
    .option('--data <dir>', 'prepared data folder (default: the base run\'s)')
    .option('--rope <variant>', 'rope (unchanged) | abf | pi | ntk | dynamic | yarn | llama3 | xpos | xpos-abf', 'abf')
    .option('--factor <x>', 'scaling factor for pi / ntk / dynamic / yarn / llama3 (default: new length / base length)', floatArg('--factor', 1))
    .option('--scale-base <n>', 'xPos scale_base (default 512)', floatArg('--scale-base', 1));
  addRopeThetaFlag(cmd, 'RoPE base (rope_theta) for abf / xpos-abf (default: 500000, the paper\'s)', '--theta');
  addTrainFlags(cmd, { lr: 'the base run\'s / 3; a model folder that is not a longctx run: 2e-5, the paper\'s' }).action(async (f: Flags) => {
    if (f.resume) return printSummary(await resume(f.resume, trainEnv(f), f.lr !== undefined ? { lr: f.lr } : {}), f.json);
    if (!f.from) throw new Error('--from is required (a pretrain run folder or a model folder)');
    const o = commonOptions(f);
    const s = await extend({ ...o, from: f.from, data: f.data, rope: f.rope, ropeTheta: ropeThetaFlag(f), factor: f.factor, scaleBase: f.scaleBase }, trainEnv(f));
    const baseFile = path.join(o.out, 'base_eval.json');
    const base = existsSync(baseFile) ? (JSON.parse(readFileSync(baseFile, 'utf8')) as { val_loss: Record<string, number> }).val_loss : {};
    printSummary(s, f.json, { base_val_loss: base });
  });
}
