// `longctx instruct generate` (self-instruct long QA pairs from documents, paper §2.2 / App. D) and
// `longctx instruct train` (supervised fine-tuning on them, §4.3).

import type { Command } from 'commander';
import type { WeightDtype } from '../model/config.js';
import { InvalidArgumentError, Option } from 'commander';
import { openModel, type OpenedModel } from '../eval/open.js';
import { ClozeGenerator } from '../instruct/cloze.js';
import { selfInstruct, type SelfInstructCounts } from '../instruct/generate.js';
import { distill } from '../instruct/distill.js';
import { instructTrain, resumeInstruct, PRETRAIN_SHARE, SFT_EPOCHS, SFT_LR, VAL_FRACTION, type InstructSummary } from '../recipes/instruct.js';
import { Progress } from '../util/progress.js';
import { checkFolderPath, floatArg, intArg, kernelsFlag, kernelsOption, topPArg } from './args.js';
import { addRunFlags, exitCodeOfStop, trainEnv } from './train-flags.js';
import { definedOnly } from '../util/defined.js';
import { tokenizerFromFile } from '../io/gguf-llama.js';

interface GenerateFlags {
  sources: string; generator?: string; out?: string; seed: number; maxDocs?: number; perDoc: number; minDocTokens: number; chunkTokens?: number;
  ctx?: number; maxNew: number; verifyMaxNew: number; shortP: number; temperature: number; topP: number; concurrency?: number; retries: number; timeout: number;
  tokenizer?: string; apiKeyEnv: string; modelId?: string; skipBad: boolean; json: boolean; quiet: boolean; kernels?: string;
}

interface TrainFlags {
  from?: string; pairs: string[]; data: string[]; chat: string[]; out?: string; lossOnInput: boolean; seqLen?: number; batchSize: number; epochs?: number; steps?: number;
  lr?: number; minLr?: number; warmup?: number; seed: number; valFraction?: number; valPairs: string[]; valData: string[]; evalEvery?: number; evalSequences?: number;
  checkpointEvery?: number; keepCheckpoints: number; microBatch?: number; dtype?: WeightDtype; resume?: string; json: boolean; pretrainData?: string; pretrainShare?: number; kernels?: string;
}

function fractionArg(flag: string): (v: string) => number {
  return (v) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0 || x > 1) throw new InvalidArgumentError(`${flag} must be a number in [0, 1], got "${v}"`);
    return x;
  };
}

/** Repeatable and comma-separated: --pairs a.jsonl --pairs b.jsonl or --pairs a.jsonl,b.jsonl */
function collect(v: string, prev: string[]): string[] {
  return [...prev, ...v.split(',').map((s) => s.trim()).filter((s) => s !== '')];
}

function countsLine(c: SelfInstructCounts): string {
  return `generated ${c.generated}, verified ${c.verified}, rejected ${c.rejected}, unparseable ${c.unparseable}`;
}

function printInstructSummary(s: InstructSummary, json: boolean): void {
  exitCodeOfStop(s);
  if (json) {
    process.stdout.write(JSON.stringify({ type: 'summary', ...s }) + '\n');
    return;
  }
  const f = (x: number | null): string => (x === null ? '-' : x.toFixed(4));
  const c = s.counts;
  process.stdout.write(`${s.interrupted ? 'stopped' : 'done'}: ${s.steps} steps, ${s.tokens} tokens, ${s.seconds.toFixed(0)} s; last train loss ${s.finalLoss.toFixed(4)}` +
    `${s.model ? `; model in ${s.model}` : ''}\n`);
  process.stdout.write(`data: ${c.long} long examples (${c.longVal} held out, ${c.longTruncated} documents cut to fit, ${c.longDropped} dropped as too long, ${c.duplicates} duplicates), ` +
    `${c.conversations} short conversations in ${c.shortSequences} sequences (${c.shortDropped} too long)` +
    `${c.pretrainSequences > 0 ? `, ${c.pretrainSequences} pretraining sequences` : ''}; ${c.scoredTokens} scored targets\n`);
  const split = s.answerLoss.split === 'held-out' ? 'held-out answers' : s.answerLoss.split === 'train' ? 'training answers (no pair held out)' : null;
  if (split) process.stdout.write(`answer loss (${split}): ${f(s.answerLoss.before)} before -> ${f(s.answerLoss.after)} after\n`);
}

export function registerInstruct(program: Command): void {
  const instruct = program
    .command('instruct')
    .description('instruction tuning on self-instructed long data (paper §2.2): generate QA pairs from long documents with a chat model, then fine-tune on them');

  instruct
    .command('generate')
    .description('self-instruct: chunk long documents, ask a generator model for a question and answer about a random chunk (normal or short-answer prompt), have it verify the answer, keep verified pairs')
    .option('--sources <list>', 'documents: moby-dick, sotu, code, file:PATH, dir:PATH[:GLOB], jsonl:PATH[:FIELD] (as data prepare)', 'moby-dick')
    .option('--generator <model>', 'the model that writes and checks the pairs: a server URL (http://HOST:PORT/v1), a .gguf file (llama.cpp), a model folder, or "cloze" (a rule-based offline stand-in; needs --tokenizer)')
    .option('--out <file>', 'verified pairs, JSONL (appended; OUT.rejected.jsonl and OUT.docs.jsonl go beside it)')
    .option('--seed <n>', 'seed of the document, chunk and prompt choices (part of every record\'s key)', intArg('--seed', 0), 0)
    .option('--max-docs <n>', 'documents to use (default: all), chosen at random by the seed', intArg('--max-docs', 1))
    .option('--per-doc <n>', 'chunks per document, chosen at random', intArg('--per-doc', 1), 1)
    .option('--min-doc-tokens <n>', 'skip documents shorter than this (generator tokens)', intArg('--min-doc-tokens', 0), 0)
    .option('--chunk-tokens <n>', 'largest chunk (default: as large as the generator\'s context allows after the prompt and --max-new)', intArg('--chunk-tokens', 32))
    .option('--ctx <n>', 'the generator\'s context (default: its trained context, or what the server reports)', intArg('--ctx', 64))
    .addOption(kernelsOption())
    .option('--max-new <n>', 'tokens generated for a question + answer', intArg('--max-new', 8), 256)
    .option('--verify-max-new <n>', 'tokens generated for the verdict', intArg('--verify-max-new', 1), 32)
    .option('--short-p <p>', 'probability of the short-answer prompt (paper: 0.5)', fractionArg('--short-p'), 0.5)
    .option('--temperature <t>', 'sample the question-answer reply at this temperature (0: greedy); seeded per chunk, so runs repeat; verdicts are greedy', floatArg('--temperature', 0), 0)
    .option('--top-p <p>', 'nucleus mass when sampling', topPArg, 1)
    .option('--concurrency <n>', 'requests in flight (servers with several slots)', intArg('--concurrency', 1))
    .option('--retries <n>', 'server only: retries on 429, 5xx, timeouts and network errors (exponential backoff)', intArg('--retries', 0), 4)
    .option('--timeout <s>', 'server only: seconds to wait for one answer', intArg('--timeout', 1), 600)
    .option('--tokenizer <path>', 'server or cloze: the tokenizer.json (or folder) to work in (default for a longctx server: fetched from it)')
    .option('--api-key-env <NAME>', 'server only: environment variable holding the API key', 'OPENAI_API_KEY')
    .option('--model-id <id>', 'server only: which of the served models')
    .option('--skip-bad', 'skip unreadable source files and bad JSONL lines', false)
    .option('--json', 'print the counts as JSON', false)
    .option('--quiet', 'no progress bar', false)
    .addHelpText('after', `
Each chunk's record has the document id, the chunk's character span, the seed, the prompt kind
(normal | short) and the verdict. Re-running with the same --out and --seed skips chunks already
recorded (verified or not), so an interrupted run resumes; it must keep the generator, --max-new,
--verify-max-new and the chunk budget (or use another --seed), and only one process writes an --out
at a time (OUT's .lock holds its pid). The generator sees Llama 2 chat turns
([INST] ... [/INST]) and decodes greedily, or samples the pair with --temperature (the llama.cpp
backend cannot: serve the GGUF with llama.cpp's server instead). Prints the counts: generated, verified, rejected
(verdict not "yes"), unparseable (no <question>/<answer> tags).
--generator cloze is not the paper's method: a rule-based stand-in that asks which word is missing
from a sentence of the chunk, so the flow runs offline with no chat model at hand.`)
    .action(async (f: GenerateFlags) => {
      if (!f.generator) throw new Error('--generator is required (a server URL, a .gguf file or a model folder)');
      if (!f.out) throw new Error('--out is required (the JSONL file of verified pairs)');
      let opened: Pick<OpenedModel, 'model' | 'close'>;
      if (f.generator === 'cloze') {
        if (!f.tokenizer) throw new Error('--generator cloze needs --tokenizer (the model to be tuned, or its tokenizer.json)');
        opened = { model: new ClozeGenerator(tokenizerFromFile(f.tokenizer), f.ctx ?? 4096), close: async () => {} };
      } else {
        opened = await openModel(f.generator, {
          apiKey: process.env[f.apiKeyEnv] || null, concurrency: f.concurrency ?? 1, retries: f.retries, timeoutMs: f.timeout * 1000,
          ...definedOnly({ tokenizer: f.tokenizer, modelId: f.modelId }),
          ...(f.ctx !== undefined && !/^https?:/i.test(f.generator) ? { ctx: f.ctx } : {}),
          ...(/^https?:/i.test(f.generator) || /\.gguf$/i.test(f.generator) ? {} : { backend: kernelsFlag(f) }),
        });
      }
      let bar: Progress | null = null;
      let counts: SelfInstructCounts;
      try {
        counts = await selfInstruct(opened.model, {
          sources: f.sources, out: f.out, seed: f.seed, perDoc: f.perDoc, minDocTokens: f.minDocTokens, maxNew: f.maxNew, verifyMaxNew: f.verifyMaxNew,
          shortP: f.shortP, skipBad: f.skipBad, temperature: f.temperature, topP: f.topP,
          ...definedOnly({ maxDocs: f.maxDocs, chunkTokens: f.chunkTokens, ctx: f.ctx, concurrency: f.concurrency }),
        }, {
          onProgress: (done, total, c) => {
            bar ??= new Progress('instruct', total, { unit: 'items', quiet: f.quiet || f.json });
            bar.update(done, countsLine(c));
          },
        });
      } finally {
        await opened.close();
      }
      (bar as Progress | null)?.finish(countsLine(counts));
      if (f.json) {
        process.stdout.write(JSON.stringify(counts) + '\n');
        return;
      }
      process.stdout.write(`${countsLine(counts)}` +
        `${counts.skipped > 0 ? ` (${counts.skipped} chunks already done were skipped)` : ''}; ${counts.documents} documents, chunks of up to ${counts.chunkTokens} tokens, generator context ${counts.ctx}\n` +
        `in the files: ${counts.files.verified} verified in ${counts.out.pairs}, ${counts.files.rejected} rejected + ${counts.files.unparseable} unparseable in ${counts.out.rejected}\n`);
    });

  instruct
    .command('distill')
    .description('turn self-instruct records into chat data that teaches a model to be the generator: the generation turns (prompt with chunk -> tagged question and answer) and the verification turns (yes, and no for wrong answers)')
    .option('--pairs <file>', 'self-instruct JSONL (instruct generate --out; its .docs.jsonl and .rejected.jsonl beside it); repeatable or comma-separated', collect, [])
    .addOption(new Option('--data <file>').argParser(collect).default([]).hideHelp()) // the older name of --pairs
    .option('--out <file>', 'chat JSONL to write ({"messages": [...], "task": "generate" | "verify"} per line), for instruct train --chat (required)')
    .option('--negatives <n>', 'per verified pair, verification turns with another pair\'s answer and a "no" verdict', intArg('--negatives', 0), 1)
    .option('--seed <n>', 'seed of the wrong answers\' choice', intArg('--seed', 0), 0)
    .option('--json', 'print the counts as JSON', false)
    .addHelpText('after', `
The paper's generator is Llama 2 Chat. A model trained here from scratch follows no prompt; tuned
on this data (instruct train --chat) it learns the generation prompt's <question>/<answer> format
and the verification prompt's yes/no, and can then serve as a generator itself. The teacher can
be any generator, e.g. a big model behind a server, or --generator cloze offline.`)
    .action((f: { pairs: string[]; data: string[]; out?: string; negatives: number; seed: number; json: boolean }) => {
      if (!f.out) throw new Error('--out is required (the chat JSONL file to write)');
      const c = distill({ data: [...f.pairs, ...f.data], out: f.out, negatives: f.negatives, seed: f.seed });
      if (f.json) {
        process.stdout.write(JSON.stringify(c) + '\n');
        return;
      }
      process.stdout.write(`${c.conversations} conversations in ${c.out}: ${c.generation} generation, ${c.verifyYes} verification "yes", ` +
        `${c.verifyNo} verification "no" (the generator's own), ${c.negatives} verification "no" with another pair's answer\n`);
    });

  addRunFlags(instruct
    .command('train')
    .description('supervised fine-tuning on self-instruct pairs (the whole document + question -> answer, one per sequence) and short chat data (packed), loss on answers, or with --loss-on-input on the long inputs too (paper Table 9)')
    .option('--from <run|model>', 'the model to tune: a run folder (its model/) or a model folder with tokenizer.json (required unless --resume)')
    .option('--pairs <file>', 'self-instruct question-answer pairs: JSONL of instruct generate --out (its .docs.jsonl beside it); repeatable or comma-separated', collect, [])
    .addOption(new Option('--data <file>').argParser(collect).default([]).hideHelp()) // the older name of --pairs
    .option('--chat <file>', 'short instruction data: JSONL of {"messages": [{"role", "content"}, ...]} (system?, user, assistant, ...); repeatable', collect, [])
    .option('--out <dir>', 'run folder to create (required unless --resume)')
    .option('--pretrain-data <dir>', 'Table 9\'s "+ pretrain data mix": a data prepare folder (same tokenizer) whose training split adds plain LM sequences')
    .option('--pretrain-share <x>', `share of the training sequences from --pretrain-data (default ${PRETRAIN_SHARE})`, floatArg('--pretrain-share', 0))
    .option('--loss-on-input', 'LM loss on the long inputs as well as the answers (the paper\'s better setting, Table 9)', false)
    .option('--seq-len <n>', 'sequence length (default the model\'s max_position_embeddings); documents are cut to fit, questions and answers never', intArg('--seq-len', 8))
    .option('--batch-size <n>', 'sequences per optimizer step', intArg('--batch-size', 1), 8)
    .option('--epochs <n>', `passes over the training sequences (default ${SFT_EPOCHS}, Llama 2's SFT)`, floatArg('--epochs', 0))
    .option('--steps <n>', 'optimizer steps (instead of --epochs)', intArg('--steps', 1))
    .option('--lr <x>', `peak learning rate (default: the --from run's, else ${SFT_LR} as Llama 2's SFT)`, floatArg('--lr', 0))
    .option('--seed <n>', 'seed of the data order and the held-out split', intArg('--seed', 0), 0)
    .option('--val-fraction <x>', `share of the self-instruct pairs held out to measure the answer loss, whole documents (default ${VAL_FRACTION}; 0 with --val-pairs)`, fractionArg('--val-fraction'))
    .option('--val-pairs <file>', 'self-instruct JSONL whose pairs are the validation set instead (never trained on); repeatable', collect, [])
    .addOption(new Option('--val-data <file>').argParser(collect).default([]).hideHelp()) // the older name of --val-pairs
    .option('--eval-every <steps>', 'validation interval (default: 10 evaluations per run)', intArg('--eval-every', 1))
    .option('--eval-sequences <n>', 'validation sequences (default: all held-out pairs, at most 64)', intArg('--eval-sequences', 1))
    .option('--resume <run>', 'continue RUN from its last checkpoint (same data, checked); of the other flags only --kernels and --lr apply (--lr: a new peak learning rate from the checkpoint on, recorded in the run)')
    .option('--json', 'JSON lines (metrics) on stdout instead of a progress bar', false))
    .addHelpText('after', `
The run folder is laid out like pretrain/extend's (config.resolved.json, metrics.jsonl,
checkpoints/, model/ with tokenizer.json, summary.json); model/tokenizer_config.json carries the
base model's chat template (Llama 2's [INST] template if it had none), which longctx serve and
longctx chat use. Validation is the loss on held-out
answers (answers only, with or without --loss-on-input), printed before and after.`)
    .action(async (f: TrainFlags) => {
      if (f.resume) return printInstructSummary(await resumeInstruct(f.resume, trainEnv(f), f.lr !== undefined ? { lr: f.lr } : {}), f.json);
      if (!f.from) throw new Error('--from is required (a run folder or a model folder)');
      if (!f.out) throw new Error('--out is required (the run folder to create)');
      checkFolderPath(f.out);
      const pairs = [...f.pairs, ...f.data], valPairs = [...f.valPairs, ...f.valData];
      if (pairs.length === 0 && f.chat.length === 0) throw new Error('give --pairs (self-instruct JSONL from instruct generate) and/or --chat (chat JSONL)');
      if (f.epochs !== undefined && f.steps !== undefined) throw new Error('give either --epochs or --steps, not both');
      const s = await instructTrain({
        from: f.from, data: pairs, chat: f.chat, out: f.out, lossOnInput: f.lossOnInput, batchSize: f.batchSize, seed: f.seed,
        keepCheckpoints: f.keepCheckpoints, valData: valPairs,
        ...definedOnly({
          valFraction: f.valFraction, seqLen: f.seqLen, epochs: f.epochs, steps: f.steps, lr: f.lr, minLr: f.minLr, warmup: f.warmup, evalEvery: f.evalEvery,
          evalSequences: f.evalSequences, checkpointEvery: f.checkpointEvery, microBatch: f.microBatch, pretrainData: f.pretrainData, pretrainShare: f.pretrainShare, dtype: f.dtype,
        }),
      }, trainEnv(f));
      printInstructSummary(s, f.json);
    });
}
