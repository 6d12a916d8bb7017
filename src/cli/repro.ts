// `longctx repro`: the paper's positional-encoding ablation end to end on the bundled corpora, and
// `longctx repro curriculum`: its sequence-length curriculum ablation. Stages are cached in --out.

import type { Command } from 'commander';
import { REPRO_PRESETS, REPRO_VARIANTS, parseVariants, repro, reproCurriculum, writeCurriculumReport, writeReproReport, type ReproPreset } from '../recipes/repro.js';
import { floatArg, intArg } from './args.js';

interface Flags { quick: boolean; full: boolean; only?: string; out: string; tokenScale: number; seed: number; quiet: boolean }

function preset(f: Flags): ReproPreset {
  if (f.quick && f.full) throw new Error('give --quick or --full, not both');
  return REPRO_PRESETS[f.quick ? 'quick' : f.full ? 'full' : 'default'];
}

function addFlags(cmd: Command, out: string): Command {
  return cmd
    .option('--quick', 'a few minutes on 2 cores: small budgets, evaluation to 2,048 (used by the tests)', false)
    .option('--full', 'the small preset at 512 -> 4,096 with larger budgets (hours)', false)
    .option('--out <dir>', 'output folder (stages are cached there; re-running skips finished ones)', out)
    .option('--token-scale <x>', 'multiply every training budget (e.g. 0.5 for a faster, noisier run)', floatArg('--token-scale', 0), 1)
    .option('--seed <n>', 'seed for data, initialisation and evaluation examples', intArg('--seed', 0), 0)
    .option('--quiet', 'no progress bars', false);
}

export function registerRepro(program: Command): void {
  const cmd = addFlags(program
    .command('repro')
    .description('reproduce the paper\'s long-context ablations on the bundled corpora: tokenizer -> base model -> continual pretraining per positional encoding -> evaluation -> report.html')
    .option('--only <list>', `positional encodings to run (default all): ${REPRO_VARIANTS.join(', ')}`), 'out/repro');
  cmd.action(async (f: Flags) => {
    const p = preset(f);
    const only = f.only ? parseVariants(f.only) : undefined;
    const t0 = Date.now();
    const outcome = await repro({ preset: p, out: f.out, ...(only ? { only } : {}), tokenScale: f.tokenScale, seed: f.seed, quiet: f.quiet });
    const file = await writeReproReport(outcome, f.out);
    process.stdout.write(`wrote ${file} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
  });
  addFlags(cmd
    .command('curriculum')
    .description('paper §4.4: from-scratch long training vs switching from short to long after 20/40/80% of the tokens, at equal tokens, with FLOPs'), 'out/repro')
    .action(async (f: Flags) => {
      const p = preset(f);
      const outcome = await reproCurriculum({ preset: p, out: f.out, tokenScale: f.tokenScale, seed: f.seed, quiet: f.quiet });
      const file = await writeCurriculumReport(outcome, f.out);
      for (const r of outcome.runs) {
        process.stdout.write(`${r.name.padEnd(28)} FLOPs ${r.summary.flops.toExponential(3)}  val loss ${Object.entries(r.summary.valLoss).map(([T, l]) => `@${T} ${l.toFixed(4)}`).join('  ')}\n`);
      }
      process.stdout.write(`wrote ${file}\n`);
    });
}
