// Instruction-tuning sequences (paper §2.2 and §4.3): token ids and targets of length T, with the
// loss on answers only or on answers and long inputs.
//
//   long examples   one self-instruct pair each, alone in its sequence and padded (paper: "padded,
//                   one per sequence"): the Llama 2 chat turn
//                     <s>[INST] You are given a long text ... """{DOCUMENT}""" Question: {Q} [/INST] {A} </s>
//                   with the WHOLE document, cut to fit T + 1 tokens. Only the document is cut,
//                   never the instruction, question or answer. Where the document is cut, the
//                   window keeps the chunk the pair was written from (the paper keeps the start;
//                   we keep the start too unless that would drop the evidence, in which case the
//                   window ends at the chunk's end).
//   pretraining     with a share s (Table 9's "+ pretrain data mix"): plain LM sequences of T + 1
//                   tokens from a prepared data folder's training split (data prepare: documents
//                   framed BOS .. EOS, packed as in pretraining, every target scored), s / (1 - s)
//                   of them per instruction sequence, so they are s of the training sequences.
//   short data      chat conversations ({"messages": [...]}, e.g. an RLHF-style SFT set), packed
//                   whole, one after another, into sequences of T + 1 tokens, then padded; a
//                   conversation longer than that is dropped (counted).
//
// A sequence of T + 1 ids gives T inputs (ids 0..T-1) and T targets (ids 1..T): target t is the id
// at t + 1 when that id is scored, else IGNORE_INDEX. Scored: the assistant's answer and its EOS;
// with lossOnInput (Table 9's better setting) every id of a long example after BOS as well. Padding
// (the tokenizer's EOS id as input) is never scored, and since attention is causal it changes
// nothing before it. Short conversations packed together attend to the ones before them, as in
// packed pretraining and in Llama 2's SFT, which concatenates examples to fill the sequence (no
// per-conversation attention mask). Validation sequences are held-out long examples
// scored on their answers only, whatever lossOnInput says, so runs with and without it compare.

import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../util/atomic.js';
import * as fs from 'node:fs';
import { IGNORE_INDEX } from '../kernels/backend.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { continuationTokens } from '../data/tokenizer/pieces.js';
import { readJsonl } from '../util/jsonl.js';
import { chatFormat, ChatTemplateError, type ChatFormat, type ChatMessage } from '../data/chat-template.js';
import { Rng, deriveSeed } from '../util/rng.js';
import { openDataset } from '../data/dataset.js';
import { createBatchIterator } from '../data/pack.js';
import { longInstanceParts, type PromptKind } from './prompts.js';
import { readAppendLog, sha256, sidecarPaths, type DocRecord, type PairRecord } from './generate.js';

export interface BuildOptions {
  /** self-instruct JSONL files (longctx instruct generate --out), each with its .docs.jsonl beside it */
  data: string[];
  /** short chat JSONL files: {"messages": [{"role", "content"}, ...]} per line */
  chat: string[];
  /** T: inputs per sequence (a sequence holds T + 1 ids) */
  seqLen: number;
  /** LM loss on the long input too, not only on answers */
  lossOnInput: boolean;
  /** share of long examples held out for validation (whole documents, chosen by a hash of the seed and the document) */
  valFraction: number;
  /** self-instruct files whose pairs are the validation set (instead of holding out a share) */
  valData?: string[];
  seed: number;
  /** Table 9's "+ pretrain data mix": a prepared data folder and the share of training sequences drawn from it */
  pretrain?: { dir: string; share: number };
  /** the model's chat format (its tokenizer_config.json's template; default the Llama 2 format) */
  format?: ChatFormat;
}

/** One training sequence. */
export interface Sequence {
  tokens: Int32Array; // (T) inputs
  targets: Int32Array; // (T) next ids, IGNORE_INDEX where not scored
  kind: 'long' | 'short' | 'pretrain';
}

export interface BuildCounts {
  long: number; // long examples made (train + val)
  longVal: number; // of which held out
  longTruncated: number; // documents cut to fit
  longDropped: number; // instruction + question + answer alone longer than T + 1
  duplicates: number; // the same (document, question, answer) seen before
  conversations: number; // short conversations packed
  shortSequences: number; // sequences they fill
  shortDropped: number; // conversations longer than T + 1
  pretrainSequences: number; // plain LM sequences from --pretrain-data
  scoredTokens: number; // targets in the training sequences that count
  inputTokens: number; // non-padding inputs in the training sequences
}

export interface BuiltData {
  train: Sequence[];
  /**
   * validation sequences, scored on answers only: held-out pairs ('held-out'); when none are held
   * out, the training pairs themselves ('train': how well the answers are fitted, not generalisation);
   * empty with no long examples at all ('none')
   */
  val: Sequence[];
  valSplit: 'held-out' | 'train' | 'none';
  counts: BuildCounts;
  /** sha256 over every sequence: the same inputs and settings give the same value */
  fingerprint: string;
}

/** Per id of an example: 0 prompt (BOS, instruction, question, [INST] tags), 1 document, 2 answer (+ EOS). */
type Role = 0 | 1 | 2;

export interface LongExample {
  ids: Int32Array; // at most maxIds
  roles: Uint8Array; // Role per id
  truncated: boolean;
  /** the document's ids kept: [from, to) of its encoding */
  window: [number, number];
  docTokens: number;
}

/**
 * The training turn of one pair with the document cut to at most `maxIds` ids in all; null when
 * even an empty document does not fit. `docIds` is the document encoded after `"""` (pass it to
 * reuse one encoding for several pairs); `span` (characters) is the chunk the pair came from.
 */
export function longExample(tok: Tokenizer, doc: string, span: readonly [number, number] | null, kind: PromptKind, question: string, answer: string,
  maxIds: number, docIds = continuationTokens(tok, doc, '"""'), format: ChatFormat = chatFormat(tok, null)): LongExample | null {
  const { head, tail } = longInstanceParts(kind, question.trim());
  // the model's chat format around the document: BOS and the turn's start, the question up to the answer, the answer and its end
  const parts = format.longParts(head, tail, answer);
  const fixed = parts.head.length + parts.tail.length + parts.answer.length;
  const budget = maxIds - fixed;
  if (budget < 0) return null;
  let from = 0, to = docIds.length;
  if (docIds.length > budget) {
    to = budget;
    if (span) {
      // where the chunk lies in the document's ids (encoding the text up to each end: about exact)
      const end = continuationTokens(tok, doc.slice(0, span[1]), '"""').length;
      if (end > budget) {
        const start = continuationTokens(tok, doc.slice(0, span[0]), '"""').length;
        from = Math.min(start, end - budget);
        to = from + budget;
      }
    }
  }
  const n = fixed + (to - from);
  const ids = new Int32Array(n);
  const roles = new Uint8Array(n);
  let k = 0;
  const put = (src: ArrayLike<number>, role: Role, a = 0, b = src.length): void => {
    for (let i = a; i < b; i++) { ids[k] = src[i]!; roles[k++] = role; }
  };
  put(parts.head, 0);
  put(docIds, 1, from, to);
  put(parts.tail, 0);
  put(parts.answer, 2);
  return { ids, roles, truncated: to - from < docIds.length, window: [from, to], docTokens: docIds.length };
}

/**
 * A sequence of T inputs from up to T + 1 ids: target t = ids[t + 1] where scored[t + 1], else
 * IGNORE_INDEX; the rest padded with `pad` (inputs) and IGNORE_INDEX (targets).
 */
export function toSequence(ids: ArrayLike<number>, scored: ArrayLike<number>, T: number, pad: number, kind: Sequence['kind']): Sequence {
  if (ids.length > T + 1) throw new RangeError(`a sequence of ${ids.length} ids does not fit ${T} inputs + 1`);
  const tokens = new Int32Array(T).fill(pad);
  const targets = new Int32Array(T).fill(IGNORE_INDEX);
  for (let t = 0; t < Math.min(ids.length, T); t++) {
    tokens[t] = ids[t]!;
    if (t + 1 < ids.length && scored[t + 1]) targets[t] = ids[t + 1]!;
  }
  return { tokens, targets, kind };
}

/** Which ids of a long example are scored. */
export function longScored(roles: Uint8Array, lossOnInput: boolean): Uint8Array {
  const s = new Uint8Array(roles.length);
  for (let i = 0; i < roles.length; i++) s[i] = roles[i] === 2 || (lossOnInput && i > 0) ? 1 : 0;
  return s;
}

/** The conversations of a chat JSONL file, each checked (roles, strings, ends with the assistant). */
export function readChatFile(file: string): { line: number; messages: ChatMessage[] }[] {
  return readJsonl(file).map(({ line, value }) => {
    const where = `${file}:${line}`;
    const m = value.messages;
    if (!Array.isArray(m) || m.length === 0) throw new Error(`${where}: field "messages" must be a non-empty array of {"role", "content"}`);
    const messages = m.map((x, i): ChatMessage => {
      if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new Error(`${where}: messages[${i}] must be an object {"role", "content"}`);
      const { role, content } = x as Record<string, unknown>;
      if (role !== 'system' && role !== 'user' && role !== 'assistant') throw new Error(`${where}: messages[${i}].role must be "system", "user" or "assistant", got ${JSON.stringify(role)}`);
      if (typeof content !== 'string') throw new Error(`${where}: messages[${i}].content must be a string`);
      return { role, content };
    });
    return { line, messages };
  });
}

/** The verified pairs of self-instruct files and the documents they point to. */
export function readPairs(files: string[]): { pairs: (PairRecord & { question: string; answer: string })[]; docs: Map<string, string> } {
  const pairs: (PairRecord & { question: string; answer: string })[] = [];
  const docs = new Map<string, string>();
  for (const file of files) {
    if (!fs.existsSync(file)) throw new Error(`${file}: no such file (write one with longctx instruct generate --out ${file})`);
    const { docs: docsFile } = sidecarPaths(file);
    if (!fs.existsSync(docsFile)) throw new Error(`${docsFile}: missing; it holds the documents of ${file} (longctx instruct generate writes both): copy it beside ${file}`);
    for (const d of readAppendLog<DocRecord>(docsFile)) {
      if (typeof d.doc !== 'string' || typeof d.text !== 'string') throw new Error(`${docsFile}: a line has no "doc" and "text"; is it a longctx .docs.jsonl file?`);
      if (d.sha256 !== sha256(d.text)) throw new Error(`${docsFile}: document ${d.doc} does not match its sha256; the file was edited or damaged: generate it again`);
      docs.set(d.doc, d.text);
    }
    readAppendLog<PairRecord>(file).forEach((r, i) => {
      const where = `${file}: record ${i + 1}`;
      if (r.status !== 'verified') throw new Error(`${where} has status ${JSON.stringify(r.status)}; --pairs takes the verified pairs (OUT of instruct generate), not its .rejected.jsonl`);
      if (typeof r.question !== 'string' || typeof r.answer !== 'string' || typeof r.doc !== 'string') throw new Error(`${where} has no question, answer or doc`);
      if (r.kind !== 'normal' && r.kind !== 'short') throw new Error(`${where}: kind must be "normal" or "short", got ${JSON.stringify(r.kind)}`);
      if (!docs.has(r.doc)) throw new Error(`${where} points to document ${r.doc}, which ${docsFile} does not hold`);
      if (r.span !== undefined && r.span !== null) {
        const n = docs.get(r.doc)!.length;
        const sp = r.span as unknown;
        if (!Array.isArray(sp) || sp.length !== 2 || !sp.every((x) => Number.isInteger(x)) || sp[0] < 0 || sp[0] >= sp[1] || sp[1] > n) {
          throw new Error(`${where}: span must be [start, end) with integers 0 <= start < end <= ${n} (the characters of document ${r.doc}), got ${JSON.stringify(sp)}`);
        }
      }
      pairs.push(r as PairRecord & { question: string; answer: string });
    });
  }
  return { pairs, docs };
}

/**
 * n sequences of T inputs from the training split of a prepared data folder, packed as pretraining
 * packs them (data/pack.ts, its seeded document order), every target scored. The folder's tokenizer
 * must be the model's.
 */
export function pretrainSequences(tok: Tokenizer, dir: string, n: number, T: number, seed: number): Sequence[] {
  if (n <= 0) return [];
  const ds = openDataset(dir);
  if (ds.tokenizer.hash() !== tok.hash()) {
    throw new Error(`--pretrain-data ${dir}: its tokenizer differs from the model's; prepare the data with the model's tokenizer.json (longctx data prepare --tokenizer MODEL/tokenizer.json)`);
  }
  if (ds.train.totalTokens === 0) throw new Error(`--pretrain-data ${dir}: the training split is empty`);
  const b = createBatchIterator(ds, { seqLen: T, batchSize: n, seed: deriveSeed(seed, 'pretrain-mix') }).next();
  const out: Sequence[] = [];
  for (let i = 0; i < n; i++) out.push({ tokens: b.tokens.slice(i * T, (i + 1) * T), targets: b.targets.slice(i * T, (i + 1) * T), kind: 'pretrain' });
  return out;
}

/**
 * Split a self-instruct file by document: ceil(valFraction * documents) of them (at least one, never
 * all), in a seeded order, go with their pairs to `valOut`, the rest to `trainOut`; each gets its
 * .docs.jsonl. So `--val-pairs valOut` never asks about a document `--pairs trainOut` trains on.
 */
export function splitPairsByDocument(file: string, trainOut: string, valOut: string, valFraction: number, seed: number): { train: number; val: number } {
  const { pairs, docs } = readPairs([file]);
  const names = [...new Set(pairs.map((p) => p.doc))].sort((a, b) => deriveSeed(seed, 'split', a) - deriveSeed(seed, 'split', b) || (a < b ? -1 : 1));
  if (names.length < 2) throw new Error(`${file}: pairs about ${names.length} document(s); a split by document needs two or more`);
  const held = new Set(names.slice(0, Math.min(names.length - 1, Math.max(1, Math.ceil(valFraction * names.length)))));
  const write = (out: string, keep: (doc: string) => boolean): number => {
    const mine = pairs.filter((p) => keep(p.doc));
    const used = [...new Set(mine.map((p) => p.doc))];
    writeFileAtomic(sidecarPaths(out).docs, used.map((d) => JSON.stringify({ v: 1, doc: d, sha256: sha256(docs.get(d)!), text: docs.get(d)! } satisfies DocRecord) + '\n').join(''));
    writeFileAtomic(out, mine.map((p) => JSON.stringify(p) + '\n').join(''));
    return mine.length;
  };
  return { train: write(trainOut, (d) => !held.has(d)), val: write(valOut, (d) => held.has(d)) };
}

/** Build training and validation sequences; see the top of the file. */
export function buildInstructData(tok: Tokenizer, o: BuildOptions): BuiltData {
  const T = o.seqLen;
  if (!(Number.isInteger(T) && T >= 8)) throw new Error(`--seq-len must be an integer >= 8, got ${T}`);
  if (!(o.valFraction >= 0 && o.valFraction < 1)) throw new Error(`--val-fraction must be in [0, 1), got ${o.valFraction}`);
  if (o.valData && o.valData.length > 0 && o.valFraction > 0) throw new Error('give --val-pairs (pairs to validate on) or --val-fraction (a share of --pairs held out), not both');
  if (o.data.length === 0 && o.chat.length === 0) throw new Error('no training data: give --pairs (self-instruct JSONL) and/or --chat (chat JSONL)');
  const pad = tok.eosId >= 0 ? tok.eosId : 0;
  const format = o.format ?? chatFormat(tok, null);
  const counts: BuildCounts = {
    long: 0, longVal: 0, longTruncated: 0, longDropped: 0, duplicates: 0, conversations: 0, shortSequences: 0, shortDropped: 0, pretrainSequences: 0,
    scoredTokens: 0, inputTokens: 0,
  };

  // Long examples, in a seeded order keyed by the pair (not the files' order). Held out are whole
  // documents, in a seeded order, until they hold round(valFraction * n) pairs (at least one when
  // there are two documents or more): a held-out pair's document is never a training input, which
  // --loss-on-input would otherwise learn. With valData, its pairs are the validation set instead.
  const { pairs, docs } = readPairs(o.data);
  const seen = new Set<string>();
  const dedupe = (p: (typeof pairs)[number]): boolean => {
    const k = `${p.doc}\u0000${p.question}\u0000${p.answer}`;
    if (seen.has(k)) { counts.duplicates++; return false; }
    seen.add(k);
    return true;
  };
  const unique = pairs.filter(dedupe);
  const keyed = unique.map((p) => ({ p, h: deriveSeed(o.seed, p.doc, p.span?.[0] ?? 0, p.span?.[1] ?? 0, p.question) }))
    .sort((a, b) => a.h - b.h || (a.p.question < b.p.question ? -1 : 1));
  const heldDocs = new Set<string>();
  const docNames = [...new Set(unique.map((p) => p.doc))];
  if (o.valFraction > 0 && docNames.length >= 2) {
    const want = Math.max(1, Math.round(o.valFraction * unique.length));
    const perDoc = new Map<string, number>();
    for (const p of unique) perDoc.set(p.doc, (perDoc.get(p.doc) ?? 0) + 1);
    let held = 0;
    for (const d of docNames.sort((a, b) => deriveSeed(o.seed, 'val', a) - deriveSeed(o.seed, 'val', b) || (a < b ? -1 : 1))) {
      if (held >= want || heldDocs.size === docNames.length - 1) break;
      heldDocs.add(d);
      held += perDoc.get(d)!;
    }
  }
  const external = o.valData && o.valData.length > 0 ? readPairs(o.valData) : null;
  const holdOut = heldDocs.size > 0 || external !== null;
  const docIds = new Map<string, Int32Array>();
  const train: Sequence[] = [];
  const val: Sequence[] = [];
  const trainAnswers: Sequence[] = []; // the training pairs scored on answers: validation when none is held out
  const example = (p: (typeof pairs)[number], texts: Map<string, string>): LongExample | null => {
    const key = `${texts === docs ? '' : 'val\u0000'}${p.doc}`;
    let ids = docIds.get(key);
    if (!ids) { ids = continuationTokens(tok, texts.get(p.doc)!, '"""'); docIds.set(key, ids); }
    const span = Array.isArray(p.span) && p.span.length === 2 ? [p.span[0], p.span[1]] as [number, number] : null;
    const ex = longExample(tok, texts.get(p.doc)!, span, p.kind, p.question, p.answer, T + 1, ids, format);
    if (!ex) { counts.longDropped++; return null; }
    counts.long++;
    if (ex.truncated) counts.longTruncated++;
    return ex;
  };
  for (const { p } of keyed) {
    const ex = example(p, docs);
    if (!ex) continue;
    if (heldDocs.has(p.doc)) {
      counts.longVal++;
      val.push(toSequence(ex.ids, longScored(ex.roles, false), T, pad, 'long'));
    } else {
      train.push(toSequence(ex.ids, longScored(ex.roles, o.lossOnInput), T, pad, 'long'));
      if (!holdOut) trainAnswers.push(toSequence(ex.ids, longScored(ex.roles, false), T, pad, 'long'));
    }
  }
  if (external) {
    // a validation pair about a document the run trains on measures memory, not reading (with
    // --loss-on-input the document itself is a training target): refused, as the held-out split does
    const trained = new Set([...new Set(unique.filter((p) => !heldDocs.has(p.doc)).map((p) => p.doc))].map((d) => sha256(docs.get(d)!)));
    const shared = [...external.docs].filter(([, text]) => trained.has(sha256(text))).map(([name]) => name);
    if (shared.length > 0) {
      throw new Error(`--val-pairs: ${shared.length} of its documents are training documents of --pairs (e.g. ${shared[0]}); generate validation pairs from other documents (another --sources)`);
    }
    const before = val.length;
    const ordered = external.pairs.map((p) => ({ p, h: deriveSeed(o.seed, p.doc, p.span?.[0] ?? 0, p.span?.[1] ?? 0, p.question) }))
      .sort((a, b) => a.h - b.h || (a.p.question < b.p.question ? -1 : 1));
    for (const { p } of ordered) {
      if (!dedupe(p)) continue;
      const ex = example(p, external.docs);
      if (!ex) continue;
      counts.longVal++;
      val.push(toSequence(ex.ids, longScored(ex.roles, false), T, pad, 'long'));
    }
    if (val.length === before) throw new Error(`--val-pairs ${o.valData!.join(',')}: no pair makes a validation sequence (${external.pairs.length} pairs: duplicates of --pairs pairs, or too long for --seq-len ${T})`);
  }
  if (heldDocs.size > 0 && val.length === 0) {
    throw new Error(`the held-out documents' pairs are all too long for --seq-len ${T} even without their document; raise --seq-len`);
  }

  // Short conversations: shuffled (seeded), packed whole into T + 1 ids, padded.
  const convs: { tokens: Int32Array; loss: Uint8Array }[] = [];
  for (const file of o.chat) {
    for (const c of readChatFile(file)) {
      try {
        convs.push(format.training(c.messages));
      } catch (e) {
        if (e instanceof ChatTemplateError) throw new Error(`${file}:${c.line}: ${e.message}`);
        throw e;
      }
    }
  }
  new Rng(deriveSeed(o.seed, 'short')).shuffle(convs);
  let ids: number[] = [];
  let scored: number[] = [];
  const flush = (): void => {
    if (ids.length === 0) return;
    train.push(toSequence(ids, scored, T, pad, 'short'));
    counts.shortSequences++;
    ids = [];
    scored = [];
  };
  for (const c of convs) {
    if (c.tokens.length > T + 1) { counts.shortDropped++; continue; }
    if (ids.length + c.tokens.length > T + 1) flush();
    for (let i = 0; i < c.tokens.length; i++) { ids.push(c.tokens[i]!); scored.push(c.loss[i]!); }
    counts.conversations++;
  }
  flush();

  if (o.pretrain && o.pretrain.share > 0 && train.length > 0) {
    // at least one: a mix asked for is never silently empty
    const n = Math.max(1, Math.round((o.pretrain.share / (1 - o.pretrain.share)) * train.length));
    for (const seq of pretrainSequences(tok, o.pretrain.dir, n, T, o.seed)) train.push(seq);
    counts.pretrainSequences = n;
  }

  if (train.length === 0) {
    throw new Error(`no training sequence: ${counts.longDropped} long examples do not fit --seq-len ${T} even without their document, ${counts.shortDropped} conversations are longer than it` +
      `${heldDocs.size > 0 ? `, and ${counts.longVal} pairs were held out (--val-fraction)` : ''}; raise --seq-len or give more data`);
  }
  const h = createHash('sha256');
  h.update(`T=${T} lossOnInput=${o.lossOnInput} train=${train.length} val=${val.length}\n`);
  if (o.pretrain) h.update(`pretrain=${o.pretrain.share}\n`);
  for (const s of [...train, ...val]) {
    h.update(s.kind);
    h.update(new Uint8Array(s.tokens.buffer, s.tokens.byteOffset, s.tokens.byteLength));
    h.update(new Uint8Array(s.targets.buffer, s.targets.byteOffset, s.targets.byteLength));
  }
  for (const s of train) {
    for (let t = 0; t < T; t++) {
      if (s.targets[t] !== IGNORE_INDEX) counts.scoredTokens++;
    }
    let n = T;
    while (n > 0 && s.tokens[n - 1] === pad && s.targets[n - 1] === IGNORE_INDEX) n--;
    counts.inputTokens += n;
  }
  const valSplit = val.length > 0 ? 'held-out' : trainAnswers.length > 0 ? 'train' : 'none';
  return { train, val: val.length > 0 ? val : trainAnswers, valSplit, counts, fingerprint: h.digest('hex') };
}
