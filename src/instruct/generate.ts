// Self-instruct long-document QA (paper §2.2, Appendix D), top to bottom:
//
//   1. read the source documents; pick documents and, in each, chunks at random (seeded), each
//      chunk cut at sentence ends to fit the generator's context with the prompt and the answer;
//   2. per chunk, one of the two prompts (normal or short answer, p = 0.5 by default) asks the
//      generator for a <question> and an <answer>;
//   3. the generator verifies its own answer against the chunk (self-critique; our prompt, the
//      paper's is unpublished): a reply starting "yes" keeps the pair;
//   4. verified pairs are appended to OUT (JSONL), rejected and unparseable ones to
//      OUT.rejected.jsonl, and every document used, in full, to OUT.docs.jsonl (the training
//      builder puts the whole document in front of the question, so it needs the text).
//
// The generator is any EvalModel (our engine on a model folder, llama.cpp on a .gguf, an
// OpenAI-compatible server with its retries), driven in token ids, decoding greedily or, with a
// temperature, sampling the question-answer reply (seeded per chunk; verdicts stay greedy). Output is
// append-only and resumable: a chunk is identified by (document, character span, seed), and chunks
// with a record in OUT or OUT.rejected.jsonl are skipped on a re-run. A line torn by a crash at the
// end of a file is cut off on the next run.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { parseSources, readSources, type Document } from '../data/sources.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import type { EvalModel } from '../eval/model.js';
import { mapLimit } from '../eval/task.js';
import { MAX_EVAL_LEN } from '../eval/memory.js';
import { splitSentences } from '../eval/text.js';
import { deriveSeed } from '../util/rng.js';
import { fsyncFile } from '../util/atomic.js';
import { lockFile, unlockFile } from '../util/lock.js';
import { llama2ChatTokens } from '../data/chat-template.js';
import { generationPrompt, parseQAPair, parseVerdict, verifyPrompt, type PromptKind } from './prompts.js';
import { jsonErrorText } from '../util/json-error.js';

export interface SelfInstructOptions {
  /** sources list as `data prepare` takes it (moby-dick,sotu,file:PATH,...) */
  sources: string;
  /** the verified pairs' JSONL file; OUT.rejected.jsonl and OUT.docs.jsonl go beside it */
  out: string;
  seed: number;
  /** documents to draw chunks from (default: all of them) */
  maxDocs?: number;
  /** chunks drawn per document (default 1, as the paper: one random chunk of each long document) */
  perDoc: number;
  /** documents shorter than this many generator tokens are not used */
  minDocTokens: number;
  /** largest chunk in generator tokens (default: as large as the context allows) */
  chunkTokens?: number;
  /** the generator's context (default: what the model accepts: a server's reported context, a folder's max_position_embeddings) */
  ctx?: number;
  /** tokens generated for a question-answer pair */
  maxNew: number;
  /** tokens generated for a verdict */
  verifyMaxNew: number;
  /** probability of the short-answer prompt */
  shortP: number;
  /** sampling of the question-answer reply (0: greedy, the default); verdicts are always greedy */
  temperature?: number;
  /** nucleus mass with temperature > 0 (default 1) */
  topP?: number;
  /** requests in flight (default: the backend's concurrency) */
  concurrency?: number;
  skipBad?: boolean;
}

/** One chunk's outcome, as written to OUT (status verified) or OUT.rejected.jsonl. */
export interface PairRecord {
  v: 1;
  /** "source/id" of the document (its text is in OUT.docs.jsonl) */
  doc: string;
  /** the chunk: characters [start, end) of the document's text */
  span: [number, number];
  seed: number;
  kind: PromptKind;
  status: 'verified' | 'rejected' | 'unparseable';
  question?: string;
  answer?: string;
  /** the verifier's yes / no (unclear: neither) */
  verdict?: 'yes' | 'no' | 'unclear';
  /** the verifier's reply */
  critique?: string;
  /** the generator's reply (sidecar records only: what could not be parsed or was rejected) */
  raw?: string;
  generator: string;
  /** chunk length in generator tokens */
  chunk_tokens: number;
  /** where the chunk shown to the generator ended, when it had to be cut short of span[1] to fit */
  chunk_end?: number;
  /** how the reply was sampled (absent: greedy) */
  sampling?: { temperature: number; top_p: number };
  /** the settings that chose and answered the chunk (a resumed run must keep them; absent in older records) */
  chunk_budget?: number;
  max_new?: number;
  verify_max_new?: number;
}

/** One document, once, in OUT.docs.jsonl. */
export interface DocRecord {
  v: 1;
  doc: string;
  sha256: string;
  text: string;
}

export interface SelfInstructCounts {
  /** chunks picked in all (done before + done now) */
  chunks: number;
  /** already in the files from an earlier run */
  skipped: number;
  /** generation calls made now: verified + rejected + unparseable */
  generated: number;
  verified: number;
  rejected: number;
  unparseable: number;
  /** totals in the files after this run */
  files: { verified: number; rejected: number; unparseable: number };
  documents: number;
  chunkTokens: number;
  ctx: number;
  out: { pairs: string; rejected: string; docs: string };
}

export interface SelfInstructIO {
  /** called after every chunk (done now, to do now) */
  onProgress?: (done: number, total: number, counts: SelfInstructCounts) => void;
}

/** data.jsonl -> data.rejected.jsonl and data.docs.jsonl beside it. */
export function sidecarPaths(out: string): { pairs: string; rejected: string; docs: string } {
  const base = outBase(out);
  return { pairs: out, rejected: `${base}.rejected.jsonl`, docs: `${base}.docs.jsonl` };
}

/** data.jsonl -> data.lock: held by the one process appending to OUT and its sidecars. */
function lockPath(out: string): string {
  return `${outBase(out)}.lock`;
}

function outBase(out: string): string {
  return out.replace(/\.jsonl$/i, '');
}

export function recordKey(doc: string, span: readonly [number, number], seed: number): string {
  return `${doc}\u0000${span[0]}:${span[1]}\u0000${seed}`;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * The JSON objects of an append-only JSONL file (none if it does not exist). A last line without its
 * newline that does not parse was torn by a crash: it is cut off (with `repair`) and ignored. Any
 * other bad line is an error naming file:line.
 */
export function readAppendLog<T>(file: string, repair = false): T[] {
  if (!fs.existsSync(file)) return [];
  if (fs.statSync(file).isDirectory()) throw new Error(`${file} is a folder; give the JSONL file's path`);
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const out: T[] = [];
  let offset = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const last = i === lines.length - 1;
    if (line.trim() !== '') {
      try {
        out.push(JSON.parse(line) as T);
      } catch (e) {
        if (!last) throw new Error(`${file}:${i + 1}: not valid JSON (${jsonErrorText(e)}); fix or delete the line`);
        if (repair) fs.truncateSync(file, Buffer.byteLength(text.slice(0, offset)));
        break;
      }
    }
    offset += line.length + 1;
  }
  return out;
}

/** Append one JSON line and fsync it: a crash loses at most the line being written. */
function appendLine(file: string, obj: unknown): void {
  fs.appendFileSync(file, JSON.stringify(obj) + '\n');
  fsyncFile(file);
}

/**
 * Character spans [start, end) of consecutive chunks of `text`, each at most `maxTokens` tokens
 * (counted piece by piece, so about), cut at sentence ends (eval/text.ts's splitSentences; a
 * sentence longer than the chunk is cut at a space), trimmed of surrounding whitespace. A last chunk
 * under a quarter of the budget is dropped (a document's tail is too little to ask about) unless it
 * is the only one.
 */
export function chunkSpans(text: string, tok: Tokenizer, maxTokens: number): [number, number][] {
  const pieces = splitSentences(text, Math.max(40, 2 * maxTokens));
  const spans: [number, number][] = [];
  const push = (s: number, e: number): void => {
    while (s < e && /\s/.test(text[s]!)) s++;
    while (e > s && /\s/.test(text[e - 1]!)) e--;
    if (e > s) spans.push([s, e]);
  };
  let start = 0, pos = 0, tokens = 0;
  for (const p of pieces) {
    const n = tok.encode(p).length;
    if (tokens + n > maxTokens && pos > start) {
      push(start, pos);
      start = pos;
      tokens = 0;
    }
    tokens += n;
    pos += p.length;
  }
  if (spans.length === 0 || tokens >= maxTokens / 4) push(start, pos);
  return spans;
}

interface Item {
  doc: string;
  text: string;
  span: [number, number];
  kind: PromptKind;
}

/** Generate, verify and record pairs; see the top of the file. */
export async function selfInstruct(model: EvalModel, o: SelfInstructOptions, io: SelfInstructIO = {}): Promise<SelfInstructCounts> {
  // One writer: two processes appending to the same files would both do every chunk.
  fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
  const lock = lockPath(o.out);
  const busy = (pid: number): string => `another ${pid === process.pid ? 'call in this process' : `process (pid ${pid})`} is generating into this file; wait for it to finish or stop it, then run again (finished chunks are kept)`;
  // already held by this process: another selfInstruct call is writing it (the lock is not ours to release)
  if (!lockFile(lock, o.out, busy)) throw new Error(`${o.out}: ${busy(process.pid)}`);
  try {
    return await generateLocked(model, o, io);
  } finally {
    unlockFile(lock);
  }
}

async function generateLocked(model: EvalModel, o: SelfInstructOptions, io: SelfInstructIO): Promise<SelfInstructCounts> {
  const tok = model.tokenizer;
  const files = sidecarPaths(o.out);
  if (!(o.shortP >= 0 && o.shortP <= 1)) throw new Error(`--short-p must be in [0, 1], got ${o.shortP}`);
  const temperature = o.temperature ?? 0;
  if (!(temperature >= 0)) throw new Error(`--temperature must be >= 0, got ${temperature}`);
  if (!((o.topP ?? 1) > 0 && (o.topP ?? 1) <= 1)) throw new Error(`--top-p must be in (0, 1], got ${o.topP}`);
  const sampling = temperature > 0 ? { temperature, top_p: o.topP ?? 1 } : undefined;
  const samplingText = (x: PairRecord['sampling']): string => (x ? `temperature ${x.temperature}, top-p ${x.top_p}` : 'greedy decoding');
  if (!(Number.isInteger(o.perDoc) && o.perDoc >= 1)) throw new Error(`--per-doc must be an integer >= 1, got ${o.perDoc}`);

  // The chunk budget: the longer of the two prompts (and of the verification prompt, which repeats
  // the pair) plus the generated tokens must fit the generator's context; 16 tokens spare for
  // tokenization differences where the chunk meets the prompt.
  // A server reports what it accepts (longctx serve --ctx); a backend with no stated limit (the
  // library's default 2^20) falls back to the trained context.
  const ctx = o.ctx ?? (model.maxContext < MAX_EVAL_LEN ? model.maxContext : model.trainedContext ?? model.maxContext);
  if (ctx >= MAX_EVAL_LEN) throw new Error(`${model.name} does not say its context length; give --ctx`);
  const user = (content: string): Int32Array => llama2ChatTokens(tok, [{ role: 'user', content }]);
  const genOverhead = Math.max(user(generationPrompt('normal', '')).length, user(generationPrompt('short', '')).length);
  const verOverhead = user(verifyPrompt('', '', '')).length;
  const fit = ctx - Math.max(genOverhead + o.maxNew, verOverhead + o.maxNew + o.verifyMaxNew) - 16;
  const chunkTokens = Math.min(o.chunkTokens ?? Infinity, fit);
  if (!(chunkTokens >= 32)) {
    throw new Error(`the generator's context of ${ctx} tokens leaves ${fit} tokens for a chunk after the prompts (${Math.max(genOverhead, verOverhead)} tokens) and --max-new ${o.maxNew} + --verify-max-new ${o.verifyMaxNew}; ` +
      'serve the generator with a longer context (--ctx), or lower --max-new');
  }

  // what chose and answers a seed's chunks: a resumed run that changed them would pick other spans
  // of the same documents (a second chunk where --per-doc asked for one) or mix two generators
  const settings = { generator: model.name, chunk_budget: chunkTokens, max_new: o.maxNew, verify_max_new: o.verifyMaxNew };
  const settingText = {
    generator: (v: unknown) => `generator ${v}`,
    chunk_budget: (v: unknown) => `chunks of up to ${v} tokens`,
    max_new: (v: unknown) => `--max-new ${v}`,
    verify_max_new: (v: unknown) => `--verify-max-new ${v}`,
  };

  // Earlier runs: what is done, and the documents they used (which must not have changed).
  const done = new Set<string>();
  const fileCounts = { verified: 0, rejected: 0, unparseable: 0 };
  for (const f of [files.pairs, files.rejected]) {
    for (const r of readAppendLog<PairRecord>(f, true)) {
      if (typeof r.doc !== 'string' || !Array.isArray(r.span) || typeof r.seed !== 'number' || !(r.status in fileCounts)) {
        throw new Error(`${f}: a line is not a longctx self-instruct record (doc, span, seed, status); give a new --out`);
      }
      // a resumed run must draw as the first part did, or one file would mix two generators' settings
      if (r.seed === o.seed && samplingText(r.sampling) !== samplingText(sampling)) {
        throw new Error(`${f}: the chunks of --seed ${o.seed} were generated with ${samplingText(r.sampling)}, this run asks for ${samplingText(sampling)}; ` +
          'continue with the same --temperature/--top-p, or give another --seed or --out');
      }
      if (r.seed === o.seed) {
        for (const k of Object.keys(settings) as (keyof typeof settings)[]) {
          if (r[k] !== undefined && r[k] !== settings[k]) {
            throw new Error(`${f}: the chunks of --seed ${o.seed} were generated with ${settingText[k](r[k])}, this run has ${settingText[k](settings[k])}; ` +
              `continue with the same settings${k === 'chunk_budget' ? ' (the chunk budget follows from --chunk-tokens, --max-new, --verify-max-new and the generator\'s context)' : ''}, or give another --seed or --out`);
          }
        }
      }
      done.add(recordKey(r.doc, r.span, r.seed));
      fileCounts[r.status]++;
    }
  }
  const knownDocs = new Map(readAppendLog<DocRecord>(files.docs, true).map((d) => [d.doc, d.sha256]));

  // Documents in a seeded order that does not depend on which others exist, then chunks per document.
  const docs: Document[] = [...readSources(parseSources(o.sources), { skipBad: o.skipBad ?? false })];
  if (docs.length === 0) throw new Error(`--sources ${o.sources} holds no documents`);
  const order = docs.map((d) => ({ d, key: `${d.source}/${d.id}` })).sort((a, b) => deriveSeed(o.seed, a.key) - deriveSeed(o.seed, b.key) || (a.key < b.key ? -1 : 1));
  const items: Item[] = [];
  let used = 0;
  for (const { d, key } of order) {
    if (o.maxDocs !== undefined && used >= o.maxDocs) break;
    if (o.minDocTokens > 0 && tok.encode(d.text).length < o.minDocTokens) continue;
    const spans = chunkSpans(d.text, tok, chunkTokens);
    if (spans.length === 0) continue;
    used++;
    const picked = spans.map((s, i) => ({ s, r: deriveSeed(o.seed, key, 'chunk', i) })).sort((a, b) => a.r - b.r).slice(0, o.perDoc).map((x) => x.s).sort((a, b) => a[0] - b[0]);
    for (const span of picked) {
      const kind: PromptKind = deriveSeed(o.seed, key, span[0], span[1], 'kind') / 2 ** 31 < o.shortP ? 'short' : 'normal';
      items.push({ doc: key, text: d.text, span, kind });
    }
  }
  if (used === 0) throw new Error(`no document of --sources ${o.sources} has --min-doc-tokens ${o.minDocTokens} tokens or more`);

  const todo = items.filter((it) => !done.has(recordKey(it.doc, it.span, o.seed)));
  // Every document a record will point to goes into OUT.docs.jsonl first, once; a document whose
  // text changed since an earlier run would make its old spans point at other text.
  const written = new Set<string>();
  for (const it of items) {
    if (written.has(it.doc)) continue;
    written.add(it.doc);
    const h = sha256(it.text);
    const known = knownDocs.get(it.doc);
    if (known !== undefined && known !== h) {
      throw new Error(`${files.docs}: document ${it.doc} has changed since it was recorded (sha256 differs); its pairs point into the old text: give a new --out`);
    }
    if (known === undefined && todo.some((t) => t.doc === it.doc)) {
      appendLine(files.docs, { v: 1, doc: it.doc, sha256: h, text: it.text } satisfies DocRecord);
      knownDocs.set(it.doc, h);
    }
  }

  const counts: SelfInstructCounts = {
    chunks: items.length, skipped: items.length - todo.length, generated: 0, verified: 0, rejected: 0, unparseable: 0,
    files: fileCounts, documents: used, chunkTokens, ctx, out: files,
  };
  const generate = async (content: string, maxNew: number, seed?: number): Promise<string> => {
    const ids = await model.generate(user(content), maxNew, seed !== undefined && temperature > 0 ? { sampling: { temperature, topP: o.topP ?? 1, seed } } : {});
    return tok.decode(ids, { skipSpecial: true });
  };

  let finished = 0;
  await mapLimit(todo, o.concurrency ?? model.concurrency ?? 1, async (it) => {
    // A chunk whose prompt came out longer than the budget (the count was per sentence) loses
    // characters from its end until both prompts fit; the record keeps the span actually used.
    let [s, e] = it.span;
    let chunk = it.text.slice(s, e);
    for (let tries = 0; user(generationPrompt(it.kind, chunk)).length + o.maxNew > ctx - 8 || user(verifyPrompt(chunk, '', '')).length + o.maxNew + o.verifyMaxNew > ctx - 8; tries++) {
      if (tries >= 8 || e - s < 16) throw new Error(`${it.doc}: a chunk at characters ${s}..${e} does not fit the generator's context of ${ctx} tokens; lower --chunk-tokens`);
      e = s + Math.floor((e - s) * 0.9);
      chunk = it.text.slice(s, e);
    }
    const base = {
      v: 1 as const, doc: it.doc, span: it.span, seed: o.seed, kind: it.kind, generator: model.name, chunk_tokens: tok.encode(chunk).length,
      ...(e !== it.span[1] ? { chunk_end: e } : {}), ...(sampling ? { sampling } : {}),
      chunk_budget: chunkTokens, max_new: o.maxNew, verify_max_new: o.verifyMaxNew,
    };
    // a sampled reply is seeded by the chunk's key, so a re-run (or a resumed run) draws the same one
    const raw = await generate(generationPrompt(it.kind, chunk), o.maxNew, deriveSeed(o.seed, it.doc, it.span[0], it.span[1], 'sample'));
    const pair = parseQAPair(raw);
    let rec: PairRecord;
    if (!pair) {
      rec = { ...base, status: 'unparseable', raw };
    } else {
      const critique = await generate(verifyPrompt(chunk, pair.question, pair.answer), o.verifyMaxNew);
      const verdict = parseVerdict(critique);
      rec = verdict === 'yes'
        ? { ...base, status: 'verified', question: pair.question, answer: pair.answer, verdict, critique }
        : { ...base, status: 'rejected', question: pair.question, answer: pair.answer, verdict, critique, raw };
    }
    // the record names the span the chunk was chosen by (the resume key), even if its end was trimmed
    appendLine(rec.status === 'verified' ? files.pairs : files.rejected, rec);
    counts.generated++;
    counts[rec.status]++;
    fileCounts[rec.status]++;
    io.onProgress?.(++finished, todo.length, counts);
  });
  return counts;
}
