// `longctx repro`: the paper's positional-encoding ablation end to end on the bundled corpora, and
// `longctx repro curriculum`: its sequence-length curriculum ablation. Stages are cached in --out.

import type { Command } from 'commander';
import { REPRO_PRESETS, REPRO_VARIANTS, parseVariants, repro, reproCurriculum, writeCurriculumReport, writeReproReport, type ReproPreset } from '../recipes/repro.js';
import { addKernelsFlag, floatArg, intArg, kernelsFlag } from './args.js';
import { instructEvalsOnDisk, instructOnDisk, reproInstruct, writeInstructReport } from '../recipes/repro-instruct.js';
import { parseSources } from '../data/sources.js';
import { definedOnly } from '../util/defined.js';

interface Flags { quick: boolean; full: boolean; only?: string; out: string; tokenScale: number; seed: number; quiet: boolean; sources?: string; seeds?: number; thetaLiteral: boolean; synthetic?: number; kernels?: string }

function preset(f: Flags): ReproPreset {
  if (f.quick && f.full) throw new Error('give --quick or --full, not both');
  const p = REPRO_PRESETS[f.quick ? 'quick' : f.full ? 'full' : 'default'];
  if (f.sources !== undefined) parseSources(f.sources); // a bad spec fails before any work
  return f.sources !== undefined ? { ...p, sources: f.sources } : p;
}

function addFlags(cmd: Command, out: string): Command {
  return addKernelsFlag(cmd)
    .option('--quick', 'a few minutes on 2 cores: small budgets, evaluation to 2,048 (used by the tests)', false)
    .option('--full', 'the default\'s model and lengths with every encoding (YaRN, NTK too), 5 seeds and twice the evaluation items (about 1.5 hours on 2 cores)', false)
    .option('--sources <list>', 'text to train and evaluate on instead of the bundled corpora: moby-dick, sotu, code, file:PATH, dir:PATH[:GLOB], jsonl:PATH[:FIELD]')
    .option('--out <dir>', 'output folder (stages are cached there; re-running skips finished ones)', out)
    .option('--token-scale <x>', 'multiply every training budget (e.g. 0.5 for a faster, noisier run)', floatArg('--token-scale', 0), 1)
    .option('--seed <n>', 'seed for data, initialisation and evaluation examples (extension seeds count up from it)', intArg('--seed', 0), 0)
    .option('--seeds <n>', 'training seeds of every extension, each evaluated on its own examples (default: the preset\'s: 3; --quick 1, --full 5)', intArg('--seeds', 1))
    .option('--theta-literal', 'the paper\'s RoPE bases 10,000 -> 500,000 instead of its geometry kept at our lengths (longctx rope --geometry)', false)
    .option('--synthetic <share>', 'share of training rows that are synthetic (passkey, first-sentence and repeat rows), with a copying warm-up first in the base run (default 0.5; 0 = the paper\'s data only)', floatArg('--synthetic', 0))
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
    const outcome = await repro({
      preset: p, out: f.out, ...(only ? { only } : {}), tokenScale: f.tokenScale, seed: f.seed, quiet: f.quiet, thetaLiteral: f.thetaLiteral, backend: kernelsFlag(f),
      ...definedOnly({ seeds: f.seeds, synthetic: f.synthetic }),
    });
    const { file, claims } = await writeReproReport(outcome, f.out, { instruct: instructOnDisk(f.out, p), instructEvals: instructEvalsOnDisk(f.out, f.seed) });
    for (const c of claims) process.stdout.write(`${c.verdict.padEnd(15)} ${c.source}: ${c.ours}\n`);
    process.stdout.write(`wrote ${file} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
  });
  // The flags above belong to `repro` and commander reads them wherever they appear, so
  // `repro curriculum --quick --out DIR` takes them from the parent command.
  cmd
    .command('curriculum')
    .description('paper §4.4: from-scratch long training vs switching from short to long after 20/40/80% of the tokens, at equal tokens, with FLOPs (takes repro\'s --quick, --full, --sources, --out, --token-scale, --seed, --seeds, --kernels, --quiet; seeds after the first train from scratch and the switch at 80% only)')
    .action(async (_local: unknown, sub: Command) => {
      const f = sub.parent!.opts<Flags>();
      if (f.only) throw new Error('--only is for the positional-encoding ablation, not for repro curriculum');
      const p = preset(f);
      const outcome = await reproCurriculum({ preset: p, out: f.out, tokenScale: f.tokenScale, seed: f.seed, quiet: f.quiet, backend: kernelsFlag(f), ...definedOnly({ seeds: f.seeds }) });
      const { file, claims } = await writeCurriculumReport(outcome, f.out);
      for (const r of outcome.runs) {
        process.stdout.write(`${`${r.name} (seed ${r.seed})`.padEnd(38)} FLOPs ${r.summary.flops.toExponential(3)}  val loss ${Object.entries(r.summary.valLoss).map(([T, l]) => `@${T} ${l.toFixed(4)}`).join('  ')}\n`);
      }
      for (const c of claims) process.stdout.write(`${c.verdict.padEnd(15)} ${c.source}: ${c.ours}\n`);
      process.stdout.write(`wrote ${file}\n`);
    });
  cmd
    .command('instruct')
    .description('paper Table 9: fine-tune the ABF model with short chat data, + a pretraining mix, + self-instruct pairs (loss on answers), + LM loss on the inputs; held-out answer loss per row, every seed (takes repro\'s --quick, --full, --sources, --out, --token-scale, --seed, --seeds, --kernels, --quiet)')
    .action(async (_local: unknown, sub: Command) => {
      const f = sub.parent!.opts<Flags>();
      if (f.only) throw new Error('--only is for the positional-encoding ablation, not for repro instruct');
      const p = preset(f);
      const a = await reproInstruct({ preset: p, out: f.out, tokenScale: f.tokenScale, seed: f.seed, quiet: f.quiet, backend: kernelsFlag(f), ...definedOnly({ seeds: f.seeds }) });
      const { file, claims } = await writeInstructReport(a, f.out);
      process.stdout.write(`pairs: ${a.pairs.train} for training, ${a.pairs.val} held out (other documents); ${a.pairs.chat} chat conversations\n`);
      for (const r of a.rows) {
        process.stdout.write(`${r.name.padEnd(36)} held-out answer loss ${r.before?.toFixed(4) ?? '-'} -> ${r.after?.toFixed(4) ?? '-'}\n`);
      }
      for (const c of claims) process.stdout.write(`${c.verdict.padEnd(15)} ${c.source}: ${c.ours}\n`);
      process.stdout.write(`wrote ${file}\n`);
    });
}
