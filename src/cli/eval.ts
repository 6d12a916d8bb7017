// `longctx eval MODEL`: the paper's probes on a model folder; writes OUT/results.json.

import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { readModelConfig } from '../io/hf.js';
import { writeFileAtomic } from '../io/atomic.js';
import { Progress } from '../util/progress.js';
import { openLocalModel, DEFAULT_CHUNK } from '../eval/backends/local.js';
import { checkEvalMemory, MAX_EVAL_LEN } from '../eval/memory.js';
import { openCorpus } from '../eval/corpus.js';
import { readQaFile } from '../eval/probes/qa.js';
import { readMcFile } from '../eval/probes/mc.js';
import { RULER_TASKS, type RulerTaskName } from '../eval/probes/ruler.js';
import { EVAL_TASKS, prepareEvaluation, type EvalInputs, type EvalTaskName } from '../eval/run.js';
import { formatSummary } from '../eval/summary.js';
import { intArg, intListArg } from './args.js';

interface EvalFlags {
  tasks?: EvalTaskName[]; maxLen?: number; lengths?: number[]; depths?: number[]; samples?: number; data: string;
  qa?: string; qaShots: number; qaMaxNew: number; mc?: string; ruler?: RulerTaskName[]; limit?: number; pplMinLen?: number;
  chunk: number; seed: number; out: string; force: boolean; json: boolean; quiet: boolean;
}

const DEFAULT_TASKS: EvalTaskName[] = ['ppl', 'first-sentence', 'passkey', 'needle', 'ruler'];
/** tokens beyond --max-len assumed by the first memory check, for generated answers and scored choices */
const GENERATION_ROOM = 256;

function listArg<T extends string>(flag: string, allowed: readonly T[]): (v: string) => T[] {
  return (v) => {
    const items = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (items.length === 0) throw new InvalidArgumentError(`${flag} is empty`);
    for (const s of items) if (!(allowed as readonly string[]).includes(s)) throw new InvalidArgumentError(`${flag}: unknown "${s}" (allowed: ${allowed.join(', ')})`);
    return [...new Set(items)] as T[];
  };
}

function depthsArg(v: string): number[] {
  return v.split(',').map((s) => {
    const x = Number(s.trim());
    if (!Number.isFinite(x) || x < 0 || x > 100) throw new InvalidArgumentError(`--depths takes percentages 0..100, got "${s}"`);
    return x / 100;
  });
}

/** A run folder (with model/) stands for its model. */
function modelDir(dir: string): string {
  if (!existsSync(path.join(dir, 'config.json')) && existsSync(path.join(dir, 'model', 'config.json'))) return path.join(dir, 'model');
  return dir;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate a model folder: loss by context length + power-law fit, first-sentence retrieval, passkey, needle-in-a-haystack, RULER-style tasks, long QA, multiple choice')
    .argument('<model>', 'model folder (config.json, model.safetensors, tokenizer.json) or a run folder with model/')
    .option('--tasks <list>', `comma-separated: ${EVAL_TASKS.join(', ')} (default ${DEFAULT_TASKS.join(',')}, plus qa / mc when --qa / --mc is given)`, listArg('--tasks', EVAL_TASKS))
    .option('--max-len <n>', 'ppl sequence length, QA prompt limit and the longest retrieval length (default max_position_embeddings)', intArg('--max-len', 16))
    .option('--lengths <list>', 'prompt lengths of first-sentence/passkey/needle/ruler (default 256, 512, ... up to --max-len)', intListArg('--lengths'))
    .option('--depths <list>', 'passkey/needle depths in percent (default 0,25,50,75,100)', depthsArg)
    .option('--samples <n>', 'examples per cell for every probe (default ppl 8, first-sentence 4, passkey 2, needle 1, ruler 4)', intArg('--samples', 1))
    .option('--data <src>', 'text for ppl/first-sentence/needle/ruler: a data folder (its held-out split), a file, a folder, or sources (moby-dick, sotu, file:PATH, ...)', 'moby-dick')
    .option('--qa <file>', 'long-document QA JSONL: {"context", "question", "answers", "choices"?}')
    .option('--qa-shots <k>', 'demonstrations per QA prompt', intArg('--qa-shots', 0), 0)
    .option('--qa-max-new <n>', 'tokens generated per QA answer', intArg('--qa-max-new', 1), 64)
    .option('--mc <file>', 'multiple-choice JSONL: {"question" | "context", "choices", "answer"}')
    .option('--ruler <list>', `RULER subtasks: ${RULER_TASKS.join(', ')}`, listArg('--ruler', RULER_TASKS))
    .option('--limit <n>', 'only the first N lines of the QA / MC files', intArg('--limit', 1))
    .option('--ppl-min-len <n>', 'smallest context length of the loss-by-length table', intArg('--ppl-min-len', 1))
    .option('--chunk <n>', 'prefill chunk (rows per forward)', intArg('--chunk', 1), DEFAULT_CHUNK)
    .option('--seed <n>', 'seed of every generated example', intArg('--seed', 0), 0)
    .requiredOption('--out <dir>', 'output folder for results.json')
    .option('--force', 'overwrite an existing results.json', false)
    .option('--json', 'print results.json on stdout instead of the summary', false)
    .option('--quiet', 'no progress bar', false)
    .action((model: string, f: EvalFlags) => {
      const resultsFile = path.join(f.out, 'results.json');
      if (existsSync(resultsFile) && !f.force) throw new Error(`${resultsFile} exists; choose another --out or pass --force to replace it`);
      const tasks: EvalTaskName[] = f.tasks ?? [...DEFAULT_TASKS, ...(f.qa ? (['qa'] as const) : []), ...(f.mc ? (['mc'] as const) : [])];
      if (tasks.includes('qa') && !f.qa) throw new Error('task qa needs --qa FILE (JSONL with context, question, answers)');
      if (tasks.includes('mc') && !f.mc) throw new Error('task mc needs --mc FILE (JSONL with question, choices, answer)');
      const dir = modelDir(model);
      const cfg = readModelConfig(dir); // "not a model folder" errors come from here, before anything is loaded
      const maxLen = f.maxLen ?? cfg.max_position_embeddings;
      if (maxLen > MAX_EVAL_LEN) throw new Error(`--max-len ${maxLen} is above the limit of ${MAX_EVAL_LEN} tokens`);
      const lengths = f.lengths ? [...new Set(f.lengths)].sort((a, b) => a - b) : undefined;
      const longest = Math.max(maxLen, ...(lengths ?? []));
      const flag = lengths && Math.max(...lengths) > maxLen ? '--lengths' : '--max-len';
      // a first check before any prompt is generated (answers take a few hundred tokens more)
      checkEvalMemory(cfg, longest + GENERATION_ROOM, f.chunk, undefined, flag);
      // Parse the user's files before loading weights: a bad line fails fast.
      const inputs: EvalInputs = {};
      if (tasks.includes('qa')) inputs.qa = { file: f.qa!, items: readQaFile(f.qa!) };
      if (tasks.includes('mc')) inputs.mc = { file: f.mc!, items: readMcFile(f.mc!) };
      if (tasks.some((t) => t === 'ppl' || t === 'first-sentence' || t === 'needle' || t === 'ruler')) inputs.corpus = openCorpus(f.data);

      // Weights are read only when the first probe runs: prompts are generated (and checked) first.
      const m = openLocalModel(dir, { chunk: f.chunk, maxContext: MAX_EVAL_LEN, defer: true });
      const prepared = prepareEvaluation(m, {
        tasks, maxLen, seed: f.seed, qaShots: f.qaShots, qaMaxNew: f.qaMaxNew,
        ...(lengths ? { lengths } : {}), ...(f.depths ? { depths: f.depths } : {}), ...(f.samples !== undefined ? { samples: f.samples } : {}),
        ...(f.ruler ? { rulerTasks: f.ruler } : {}), ...(f.limit !== undefined ? { limit: f.limit } : {}),
        ...(f.pplMinLen !== undefined ? { pplMinLen: f.pplMinLen } : {}),
      }, inputs);
      // the exact figure: the longest prompt + answer (or + choice) of any example
      checkEvalMemory(cfg, prepared.maxSeq, f.chunk, undefined, flag);
      const bar = new Progress('eval', prepared.work, { unit: 'items', quiet: f.quiet });
      const results = prepared.run({ add: (n, extra) => bar.add(n, extra) });
      bar.finish(`${tasks.length} task${tasks.length === 1 ? '' : 's'}`);
      mkdirSync(f.out, { recursive: true });
      writeFileAtomic(resultsFile, JSON.stringify(results, null, 2) + '\n');
      if (f.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
      else process.stdout.write(`${formatSummary(results)}\nwrote ${resultsFile}\n`);
    });
}
