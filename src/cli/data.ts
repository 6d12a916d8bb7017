// `longctx data prepare|stats`: token shards from text sources, and what they hold.

import { InvalidArgumentError, type Command } from 'commander';
import { parseSources } from '../data/sources.js';
import { prepareData } from '../data/prepare.js';
import { openDataset } from '../data/dataset.js';
import { computeStats, formatStats } from '../data/stats.js';
import { checkMix, parseSourceWeights, parseUpsample, type MixOptions } from '../data/mix.js';
import { exportData } from '../io/megatron.js';
import { readRunConfig } from '../train/run.js';
import { intArg, floatArg } from './args.js';

interface PrepareFlags { sources: string; tokenizer: string; out: string; valFraction: number; seed: number; shardTokens: number; skipBad: boolean; force: boolean; json: boolean; quiet: boolean }
interface StatsFlags { mix?: string; upsample?: string; json: boolean }

export function registerData(program: Command): void {
  const data = program.command('data').description('tokenize text sources into shards, and inspect them');

  data
    .command('prepare')
    .description('tokenize sources into binary shards with a held-out validation split (re-running skips finished work)')
    .requiredOption('--sources <list>', 'comma-separated: moby-dick, sotu, code, file:PATH, dir:PATH[:GLOB], jsonl:PATH[:FIELD] (NAME=SPEC names one)')
    .requiredOption('--tokenizer <path>', 'tokenizer.json or a folder with one')
    .requiredOption('--out <dir>', 'data folder (new, empty, or one written by data prepare)')
    .option('--val-fraction <f>', 'share of documents held out for validation (chosen by document hash)', floatArg('--val-fraction', 0), 0.05)
    .option('--seed <n>', 'seed of the validation split', intArg('--seed'), 0)
    .option('--shard-tokens <n>', 'tokens per shard (approximate: shards hold whole documents)', intArg('--shard-tokens', 1), 1 << 24)
    .option('--skip-bad', 'skip unreadable or invalid-UTF-8 files and bad JSONL lines (and report how many)', false)
    .option('--force', 'rebuild a folder prepared with another tokenizer or settings, and drop sources it holds that --sources does not list (default: refuse)', false)
    .option('--json', 'print the manifest totals as JSON', false)
    .option('--quiet', 'no progress bar', false)
    .action((o: PrepareFlags) => {
      if (o.valFraction >= 1) throw new Error(`--val-fraction must be below 1, got ${o.valFraction}`);
      const t0 = Date.now();
      const r = prepareData({
        sources: parseSources(o.sources), tokenizer: o.tokenizer, out: o.out,
        valFraction: o.valFraction, seed: o.seed, shardTokens: o.shardTokens, skipBad: o.skipBad,
        progress: !o.quiet, log: (l) => process.stderr.write(`${l}\n`), force: o.force,
      });
      const secs = (Date.now() - t0) / 1000;
      const m = r.manifest;
      if (o.json) {
        process.stdout.write(JSON.stringify({ out: o.out, totals: m.totals, built: r.built, reused: r.reused, skippedRecords: r.skippedRecords, seconds: secs, sources: m.sources.map((s) => ({ name: s.name, train: s.train, val: s.val, shards: s.shards.length })) }, null, 2) + '\n');
        return;
      }
      const shards = m.sources.reduce((a, s) => a + s.shards.length, 0);
      process.stdout.write(`wrote ${o.out}: train ${m.totals.train.documents} documents ${m.totals.train.tokens.toLocaleString('en-US')} tokens, val ${m.totals.val.documents} documents ${m.totals.val.tokens.toLocaleString('en-US')} tokens, ${shards} shards (${r.built.length} source(s) tokenized, ${r.reused.length} up to date${r.skippedRecords ? `, ${r.skippedRecords} bad record(s) skipped` : ''}) in ${secs.toFixed(1)} s\n`);
    });

  data
    .command('export')
    .description('write a prepared data folder in the big trainers\' formats: Megatron-LM indexed datasets (.bin + .idx; Megatron, NeMo, GPT-NeoX) or JSONL text (torchtitan, Hugging Face), train and validation separately, the training split in the order of one epoch of the mix')
    .argument('[dir]', 'data folder (longctx data prepare); default: the --from-run run\'s')
    .requiredOption('--format <name>', 'megatron or jsonl', (v: string) => {
      if (v !== 'megatron' && v !== 'jsonl') throw new InvalidArgumentError(`--format must be megatron or jsonl, got "${v}"`);
      return v;
    })
    .requiredOption('--out <prefix>', 'output prefix: PREFIX_train_text_document.{bin,idx} and PREFIX_val_text_document.{bin,idx} (megatron), PREFIX_train.jsonl and PREFIX_val.jsonl (jsonl)')
    .option('--from-run <run>', 'take the data folder, mix and seed of a pretrain or extend run (its synthetic rows are not documents and are not exported)')
    .option('--mix <list>', 'mix weights per source, e.g. moby-dick=2,sotu=1 (as in pretrain)')
    .option('--upsample <spec>', 'up-sample documents longer than LENGTH by FACTOR, e.g. 2048x3 (as in pretrain)')
    .option('--seed <n>', 'seed of the epoch order', intArg('--seed', 0))
    .option('--json', 'print what was written as JSON', false)
    .action((dirArg: string | undefined, o: { format: 'megatron' | 'jsonl'; out: string; fromRun?: string; mix?: string; upsample?: string; seed?: number; json: boolean }) => {
      const run = o.fromRun ? readRunConfig(o.fromRun) : null;
      if (run && run.kind === 'instruct') throw new Error(`${o.fromRun} is an instruction-tuning run; its data is JSONL already (config.resolved.json names the files)`);
      const dir = dirArg ?? run?.data;
      if (!dir) throw new Error('give a data folder, or --from-run RUN');
      const mix = o.mix || o.upsample
        ? { ...(o.mix ? { sourceWeights: parseSourceWeights(o.mix) } : {}), ...(o.upsample ? parseUpsample(o.upsample) : {}) }
        : run?.mix ?? {};
      const ds = openDataset(dir);
      checkMix(ds.train, mix);
      const t0 = Date.now();
      const splits = exportData(ds, { format: o.format, out: o.out, mix, seed: o.seed ?? run?.seed ?? 0 });
      if (o.json) {
        process.stdout.write(JSON.stringify({ data: dir, format: o.format, mix, splits }, null, 2) + '\n');
        return;
      }
      for (const s of splits) process.stdout.write(`${s.split.padEnd(5)} ${s.documents} documents, ${s.tokens.toLocaleString('en-US')} tokens: ${s.files.join(', ')}\n`);
      process.stdout.write(`exported ${dir} as ${o.format} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    });

  data
    .command('stats')
    .description('tokens per source, document lengths, and the share of tokens from long documents, before and after a mix')
    .argument('<dir>', 'data folder written by data prepare')
    .option('--mix <weights>', 'per-source weights, e.g. sotu=2,code=0.5 (expected appearances of each document per epoch)')
    .option('--upsample <LxF>', 'up-sample documents of at least L tokens by F, e.g. 8192x4 or 8kx4')
    .option('--json', 'print JSON', false)
    .action((dir: string, o: StatsFlags) => {
      const ds = openDataset(dir);
      const mix: MixOptions = {};
      if (o.mix) mix.sourceWeights = parseSourceWeights(o.mix);
      if (o.upsample) Object.assign(mix, parseUpsample(o.upsample));
      const s = computeStats(ds, mix);
      process.stdout.write(o.json ? JSON.stringify(s, null, 2) + '\n' : formatStats(s));
    });
}
