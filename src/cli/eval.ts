// `longctx eval MODEL`: the paper's probes on a model folder or an OpenAI-compatible server; writes OUT/results.json and OUT/charts/.

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { journaled, type Journal } from '../eval/backends/journal.js';
import { estimateEvalSeconds } from '../eval/estimate.js';

/** a server's answers, kept as they arrive (eval/backends/journal.ts) */
const CALLS_FILE = 'calls.jsonl';
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { Progress, humanDuration } from '../util/progress.js';
import { DEFAULT_CHUNK } from '../eval/backends/local.js';
import { openModel } from '../eval/open.js';
import { checkEvalMemory, MAX_EVAL_LEN } from '../eval/memory.js';
import { openCorpus } from '../eval/corpus.js';
import { readQaFile } from '../eval/probes/qa.js';
import { readMcFile } from '../eval/probes/mc.js';
import { RULER_NAMES, RULER_TASKS, type RulerTaskName } from '../eval/probes/ruler.js';
import { EVAL_TASKS, needsText, prepareEvaluation, type EvalInputs, type EvalSettings, type EvalTaskName, type PreparedEvaluation } from '../eval/run.js';
import { formatSummary } from '../eval/summary.js';
import { writeEvalOutputs } from '../recipes/evaluate.js';
import { addRopeThetaFlag, checkFolderPath, intArg, intListArg, floatArg, kernelsFlag, kernelsOption, ropeThetaFlag } from './args.js';
import { definedOnly } from '../util/defined.js';
import { lmEvalResults } from '../eval/scores.js';
import { writeFileAtomic } from '../util/atomic.js';

interface EvalFlags {
  tasks?: EvalTaskName[]; maxLen?: number; lengths?: number[]; depths?: number[]; samples?: number; data: string;
  qa?: string; qaShots: number; qaMaxNew: number; mc?: string; ruler?: RulerTaskName[]; limit?: number; pplMinLen?: number; copySpan?: number;
  chunk: number; seed: number; out: string; force: boolean; restart: boolean; json: boolean; quiet: boolean; kernels?: string; format: 'longctx' | 'lm-eval';
  backend?: 'local' | 'llama.cpp'; ropeTheta?: number; ropeBase?: number; tokenizer?: string; apiKeyEnv: string; concurrency: number; modelId?: string; timeout: number; retries: number; charts: boolean;
}

/** what --format lm-eval writes beside results.json */
const LM_EVAL_FILE = 'results_lm-eval.json';

const DEFAULT_TASKS: EvalTaskName[] = ['ppl', 'copy', 'first-sentence', 'passkey', 'needle', 'ruler'];
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

/** --ruler: subtasks by RULER's names (niah_multikey_1, vt, cwe) or ours. */
function rulerArg(v: string): RulerTaskName[] {
  const byName = new Map<string, RulerTaskName>(RULER_TASKS.flatMap((t) => [[t, t], [RULER_NAMES[t], t]] as [string, RulerTaskName][]));
  const allowed = [...new Set(RULER_TASKS.flatMap((t) => [RULER_NAMES[t], t]))];
  return [...new Set(listArg('--ruler', allowed)(v).map((s) => byName.get(s)!))];
}

function depthsArg(v: string): number[] {
  return v.split(',').map((s) => {
    const x = Number(s.trim());
    if (!Number.isFinite(x) || x < 0 || x > 100) throw new InvalidArgumentError(`--depths takes percentages 0..100, got "${s}"`);
    return x / 100;
  });
}

function backendArg(v: string): 'local' | 'llama.cpp' {
  if (v !== 'local' && v !== 'llama.cpp') throw new InvalidArgumentError(`--backend: unknown "${v}" (allowed: local, llama.cpp)`);
  return v;
}


export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description('evaluate a model folder or an OpenAI-compatible server: loss by context length + power-law fit, first-sentence retrieval, passkey, needle-in-a-haystack, RULER-style tasks, long QA, multiple choice')
    .argument('<model>', 'model folder (config.json, model.safetensors, tokenizer.json), a run folder with model/, a .gguf file (evaluated with llama.cpp; see longctx export gguf), or an OpenAI-compatible server URL (http://HOST:PORT/v1)')
    .option('--tasks <list>', `comma-separated: ${EVAL_TASKS.join(', ')} (default ${DEFAULT_TASKS.join(',')}, plus qa / mc when --qa / --mc is given)`, listArg('--tasks', EVAL_TASKS))
    .option('--max-len <n>', 'ppl sequence length, QA prompt limit and the longest retrieval length (default max_position_embeddings)', intArg('--max-len', 16))
    .option('--lengths <list>', 'prompt lengths of first-sentence/passkey/needle/ruler (default 256, 512, ... up to --max-len)', intListArg('--lengths'))
    .option('--depths <list>', 'passkey/needle depths in percent (default 0,25,50,75,100)', depthsArg)
    .option('--samples <n>', 'examples per cell for every probe (default ppl 8, copy 8, first-sentence 4, passkey 2, needle 1, ruler 4)', intArg('--samples', 1))
    .option('--data <src>', 'text for ppl/copy/first-sentence/needle/ruler: a data folder (its held-out split), a file, a folder, or sources (moby-dick, sotu, file:PATH, ...)', 'moby-dick')
    .option('--qa <file>', 'long-document QA JSONL: {"context", "question", "answers", "choices"?}')
    .option('--qa-shots <k>', 'demonstrations per QA prompt', intArg('--qa-shots', 0), 0)
    .option('--qa-max-new <n>', 'tokens generated per QA answer', intArg('--qa-max-new', 1), 64)
    .option('--mc <file>', 'multiple-choice JSONL: {"question" | "context", "choices", "answer"}')
    .option('--ruler <list>', `RULER subtasks: ${RULER_TASKS.map((t) => (RULER_NAMES[t] === t ? t : `${RULER_NAMES[t]} (or ${t})`)).join(', ')}`, rulerArg)
    .option('--limit <n>', 'only the first N lines of the QA / MC files', intArg('--limit', 1))
    .option('--ppl-min-len <n>', 'smallest context length of the loss-by-length table', intArg('--ppl-min-len', 1))
    .option('--copy-span <n>', 'tokens per repeated span of the copy probe (default 64, or max-len/8 as a power of two when smaller)', intArg('--copy-span', 2))
    .option('--chunk <n>', 'prefill chunk (rows per forward; model folders only)', intArg('--chunk', 1), DEFAULT_CHUNK)
    .addOption(kernelsOption())
    .option('--seed <n>', 'seed of every generated example', intArg('--seed', 0), 0)
    .option('--backend <name>', 'local (longctx\'s engine, for model folders) or llama.cpp (for .gguf files, through node-llama-cpp\'s CPU build; the default for a .gguf MODEL)', backendArg)
    .option('--tokenizer <path>', 'server URL only: the served model\'s tokenizer.json or its folder (default: fetched from a longctx server)')
    .option('--api-key-env <NAME>', 'server URL only: environment variable holding the API key', 'OPENAI_API_KEY')
    .option('--concurrency <n>', 'server URL only: requests in flight at once', intArg('--concurrency', 1), 1)
    .option('--model-id <id>', 'server URL only: which of the served models (default: the only one listed)')
    .option('--timeout <s>', 'server URL only: seconds to wait for one answer', intArg('--timeout', 1), 600)
    .option('--retries <n>', 'server URL only: retries on 429, 5xx, timeouts and network errors (exponential backoff)', intArg('--retries', 0), 4)
    .requiredOption('--out <dir>', 'output folder for results.json and charts/')
    .option('--force', 'overwrite an existing results.json', false)
    .option('--restart', 'server URL only: ask the server again for the answers an interrupted run kept in OUT/calls.jsonl', false)
    .option('--json', 'print results.json on stdout instead of the summary', false)
    .option('--quiet', 'no progress bar', false)
    .option('--no-charts', 'skip OUT/charts/ (SVG + PNG of every task\'s results)')
    .option('--format <name>', 'longctx (results.json) or lm-eval (also OUT/results_lm-eval.json in lm-evaluation-harness\'s layout: results[task]["metric,none"] with "metric_stderr,none", n-samples)', (v: string) => {
      if (v !== 'longctx' && v !== 'lm-eval') throw new InvalidArgumentError(`--format must be longctx or lm-eval, got "${v}"`);
      return v;
    }, 'longctx');
  addRopeThetaFlag(cmd, 'llama.cpp only: RoPE base (rope_theta) to use instead of the file\'s llama.rope.freq_base', '--rope-base', 0);
  cmd.action(async (model: string, f: EvalFlags) => {
    const ropeTheta = ropeThetaFlag(f); // llama.cpp only
    checkFolderPath(f.out);
    const resultsFile = path.join(f.out, 'results.json');
    if (existsSync(resultsFile) && !f.force) throw new Error(`${resultsFile} exists; choose another --out or pass --force to replace it`);
    const tasks: EvalTaskName[] = f.tasks ?? [...DEFAULT_TASKS, ...(f.qa ? (['qa'] as const) : []), ...(f.mc ? (['mc'] as const) : [])];
    if (tasks.includes('qa') && !f.qa) throw new Error('task qa needs --qa FILE (JSONL with context, question, answers)');
    if (tasks.includes('mc') && !f.mc) throw new Error('task mc needs --mc FILE (JSONL with question, choices, answer)');
    const lengths = f.lengths ? [...new Set(f.lengths)].sort((a, b) => a - b) : undefined;
    // Parse the user's files before loading weights or calling a server: a bad line fails fast.
    const readInputs = (): EvalInputs => {
      const inputs: EvalInputs = {};
      if (tasks.includes('qa')) inputs.qa = { file: f.qa!, items: readQaFile(f.qa!) };
      if (tasks.includes('mc')) inputs.mc = { file: f.mc!, items: readMcFile(f.mc!) };
      if (needsText(tasks)) inputs.corpus = openCorpus(f.data);
      return inputs;
    };
    const settingsFor = (maxLen: number): EvalSettings => ({
      tasks, maxLen, seed: f.seed, qaShots: f.qaShots, qaMaxNew: f.qaMaxNew,
      ...definedOnly({ lengths, depths: f.depths, samples: f.samples, rulerTasks: f.ruler, limit: f.limit, pplMinLen: f.pplMinLen, copySpan: f.copySpan }),
    });
    // The user's files first (a bad line fails before weights load or a server is called), then the
    // model: weights are read only when the first probe runs, so prompts are generated and checked first.
    const inputs = readInputs();
    const opened = await openModel(model, {
      backend: kernelsFlag(f), chunk: f.chunk, defer: true, maxContext: MAX_EVAL_LEN, checkMemory: false,
      ...definedOnly({ engine: f.backend, ropeTheta, tokenizer: f.tokenizer, modelId: f.modelId }),
      apiKey: process.env[f.apiKeyEnv] || null, concurrency: f.concurrency, timeoutMs: f.timeout * 1000, retries: f.retries,
    });
    let prepared: PreparedEvaluation;
    let journal: Journal | null = null;
    try {
      const server = opened.server;
      const maxLen = f.maxLen ?? opened.trainedContext ?? (server && server.maxContext < MAX_EVAL_LEN ? server.maxContext : undefined);
      if (maxLen === undefined) throw new Error(`${model} does not say its context length; give --max-len`);
      if (maxLen > MAX_EVAL_LEN) throw new Error(`--max-len ${maxLen} is above the limit of ${MAX_EVAL_LEN} tokens`);
      const flag = lengths && Math.max(...lengths) > maxLen ? '--lengths' : '--max-len';
      // A server's memory is its own concern. Ours (and llama.cpp's F32 KV cache, about the same): a
      // first check before any prompt is generated (answers take a few hundred tokens more), then the
      // exact figure, the longest prompt + answer (or + choice) of any example.
      if (opened.config) checkEvalMemory(opened.config, Math.max(maxLen, ...(lengths ?? [])) + GENERATION_ROOM, { chunk: f.chunk, flag });
      // a server's answers are kept as they come (OUT/calls.jsonl): an interrupted run picks up where it stopped
      let evalModel = opened.model;
      if (server) {
        mkdirSync(f.out, { recursive: true });
        const j = journaled(server, path.join(f.out, CALLS_FILE), { url: server.base, model: server.modelId, tokenizer: server.tokenizer.hash(), remote: server.info.remote ?? null }, { restart: f.restart });
        evalModel = j.model;
        journal = j.journal;
        if (journal.kept > 0 && !f.quiet) process.stderr.write(`eval: ${journal.kept} answers kept in ${journal.file} from an interrupted run are reused (--restart asks the server again)\n`);
      }
      prepared = prepareEvaluation(evalModel, settingsFor(maxLen), inputs);
      if (opened.config) checkEvalMemory(opened.config, prepared.maxSeq, { chunk: f.chunk, flag });
      // ppl, copy, mc and qa with choices score prompts: find out now, with one line saying what still works
      if (server && (tasks.includes('ppl') || tasks.includes('copy') || tasks.includes('mc') || inputs.qa?.items.some((q) => q.choices))) await server.checkPromptLogprobs();
    } catch (e) {
      await opened.close();
      throw e;
    }
    if (opened.config && !f.quiet && !f.json) {
      const est = await estimateEvalSeconds(opened.model, opened.config, prepared.work, prepared.maxSeq);
      process.stderr.write(`eval: ${prepared.work.toLocaleString('en-US')} tokens through the model, about ${humanDuration(est)} (estimated from a timed forward pass)\n`);
    }
    const bar = new Progress('eval', prepared.work, { unit: 'items', quiet: f.quiet });
    let results;
    try {
      results = await prepared.run({ add: (n, extra) => bar.add(n, extra) });
    } finally {
      await opened.close();
    }
    bar.finish(`${tasks.length} task${tasks.length === 1 ? '' : 's'}`);
    const charts = await writeEvalOutputs(f.out, results, f.charts);
    if (journal) rmSync(journal.file, { force: true }); // results.json holds it all now
    if (f.format === 'lm-eval') writeFileAtomic(path.join(f.out, LM_EVAL_FILE), JSON.stringify(lmEvalResults(results), null, 2) + '\n');
    const chartsNote = charts.length > 0 ? ` and ${charts.filter((c) => c.endsWith('.svg')).length} charts in ${path.join(f.out, 'charts')}` : '';
    if (f.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    else process.stdout.write(`${formatSummary(results)}\nwrote ${resultsFile}${f.format === 'lm-eval' ? ` and ${path.join(f.out, LM_EVAL_FILE)}` : ''}${chartsNote}\n`);
  });
}
