// The generator's own work as chat data: `longctx instruct distill`. Self-instruct needs a chat model
// that follows the generation prompt's format (<question>/<answer> tags) and answers the
// verification prompt with yes or no. The paper has Llama 2 Chat for that; a model trained here from
// scratch has no such skill. Distillation gives it one: every record of an `instruct generate` run
// (by any generator: a big served model, or the rule-based cloze stand-in) becomes the conversations
// that produced it, to be fine-tuned on with `instruct train --chat`:
//
//   generation     user: the generation prompt with the chunk    assistant: <question>Q</question>\n<answer>A</answer>
//   verification   user: the verification prompt with the pair   assistant: the generator's verdict ("Yes, ...")
//   negatives      user: the verification prompt with the question and ANOTHER pair's answer
//                  assistant: "No, ..." (a verdict of ours), so the student's judge learns to say no;
//                  and every pair the teacher itself rejected ("no"), with the teacher's reply.
//
// The prompts are prompts.ts's, so a model tuned on this data sees at generation time exactly the
// turns it was trained on. Unparseable records teach nothing and are skipped.

import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { deriveSeed } from '../util/rng.js';
import type { ChatMessage } from '../data/chat-template.js';
import { generationPrompt, verifyPrompt } from './prompts.js';
import { readAppendLog, sidecarPaths, type PairRecord } from './generate.js';
import { readPairs } from './build.js';

/** The verdict of a synthesized negative (ours: no generator wrote it). */
export const NEGATIVE_VERDICT = 'No, the text does not support that answer.';

export interface DistillOptions {
  /** self-instruct JSONL files (instruct generate --out), each with its .docs.jsonl (and .rejected.jsonl, if any) beside it */
  data: string[];
  out: string;
  /** synthesized negative verifications per verified pair (another pair's answer to its question) */
  negatives: number;
  seed: number;
}

export interface DistillCounts {
  generation: number;
  verifyYes: number;
  /** the teacher's own "no" verdicts */
  verifyNo: number;
  /** synthesized: a question with another pair's answer */
  negatives: number;
  conversations: number;
  out: string;
}

/** One line of the output: a chat conversation, and which task it teaches. */
export interface DistillLine {
  messages: ChatMessage[];
  task: 'generate' | 'verify';
}

/** The <question>/<answer> reply a generator should give for a pair (the form parseQAPair reads). */
export function taggedReply(question: string, answer: string): string {
  return `<question>${question}</question>\n<answer>${answer}</answer>`;
}

/** The conversations of a self-instruct run's records; see the top of the file. */
export function distillConversations(o: Omit<DistillOptions, 'out'>): { lines: DistillLine[]; counts: Omit<DistillCounts, 'out'> } {
  if (!(Number.isInteger(o.negatives) && o.negatives >= 0)) throw new Error(`--negatives must be an integer >= 0, got ${o.negatives}`);
  const { pairs, docs } = readPairs(o.data);
  // the teacher's rejections with a clear "no" (unclear verdicts and unparseable replies teach nothing)
  const rejected: PairRecord[] = [];
  for (const f of o.data) {
    for (const r of readAppendLog<PairRecord>(sidecarPaths(f).rejected)) {
      if (r.status === 'rejected' && r.verdict === 'no' && typeof r.question === 'string' && typeof r.answer === 'string' && typeof r.critique === 'string' && docs.has(r.doc)) rejected.push(r);
    }
  }
  const chunkOf = (r: PairRecord): string => docs.get(r.doc)!.slice(r.span[0], r.chunk_end ?? r.span[1]);
  const user = (content: string): ChatMessage => ({ role: 'user', content });
  const assistant = (content: string): ChatMessage => ({ role: 'assistant', content: content.trim() });
  const lines: DistillLine[] = [];
  const counts = { generation: 0, verifyYes: 0, verifyNo: 0, negatives: 0, conversations: 0 };
  // Wrong answers for the negatives: another pair's answer of the same kind (so length gives nothing
  // away; any kind when there is no other), preferably about another document (a pair about the
  // same text may answer the same thing in other words), never one that normalizes to the same
  // answer, drawn without replacement.
  const norm = (a: string): string => a.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim();
  const answers = pairs.map((p) => norm(p.answer));
  const byKind = new Map<string, number[]>();
  pairs.forEach((p, j) => { const l = byKind.get(p.kind) ?? []; l.push(j); byKind.set(p.kind, l); });
  const all = pairs.map((_, j) => j);
  const pickWrong = (i: number, k: number, taken: Set<number>): number | null => {
    const p = pairs[i]!;
    const ok = (j: number, otherDoc: boolean): boolean => answers[j] !== answers[i] && !taken.has(j) && (!otherDoc || pairs[j]!.doc !== p.doc);
    for (const pool of [byKind.get(p.kind)!, all]) {
      for (const otherDoc of [true, false]) {
        // a few seeded draws first (cheap with many pairs), then a scan from a seeded start
        for (let t = 0; t < 8; t++) {
          const j = pool[deriveSeed(o.seed, 'negative', i, k, t) % pool.length]!;
          if (ok(j, otherDoc)) return j;
        }
        const start = deriveSeed(o.seed, 'negative-scan', i, k) % pool.length;
        for (let t = 0; t < pool.length; t++) {
          const j = pool[(start + t) % pool.length]!;
          if (ok(j, otherDoc)) return j;
        }
      }
    }
    return null;
  };
  pairs.forEach((p, i) => {
    const chunk = chunkOf(p);
    lines.push({ task: 'generate', messages: [user(generationPrompt(p.kind, chunk)), assistant(taggedReply(p.question, p.answer))] });
    counts.generation++;
    if (typeof p.critique === 'string' && p.critique.trim() !== '') {
      lines.push({ task: 'verify', messages: [user(verifyPrompt(chunk, p.question, p.answer)), assistant(p.critique)] });
      counts.verifyYes++;
    }
    const taken = new Set<number>();
    for (let k = 0; k < o.negatives; k++) {
      const j = pickWrong(i, k, taken);
      if (j === null) break;
      taken.add(j);
      lines.push({ task: 'verify', messages: [user(verifyPrompt(chunk, p.question, pairs[j]!.answer)), assistant(NEGATIVE_VERDICT)] });
      counts.negatives++;
    }
  });
  for (const r of rejected) {
    lines.push({ task: 'verify', messages: [user(verifyPrompt(chunkOf(r), r.question!, r.answer!)), assistant(r.critique!)] });
    counts.verifyNo++;
  }
  counts.conversations = lines.length;
  return { lines, counts };
}

/** Write the conversations to `out` (JSONL, atomically: a crash leaves the old file or none). */
export function distill(o: DistillOptions): DistillCounts {
  if (o.data.length === 0) throw new Error('--pairs is required (the JSONL of instruct generate --out)');
  const inputs = o.data.flatMap((f) => Object.values(sidecarPaths(f)).map((x) => path.resolve(x)));
  if (inputs.includes(path.resolve(o.out))) throw new Error(`--out ${o.out} is one of the --pairs files or beside them (.docs.jsonl, .rejected.jsonl); choose another file`);
  const { lines, counts } = distillConversations(o);
  if (lines.length === 0) throw new Error(`${o.data.join(', ')}: no verified or rejected pair to learn from (unparseable replies teach nothing)`);
  writeFileAtomic(o.out, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return { ...counts, out: o.out };
}
