// FIRST-SENTENCE-RETRIEVAL (paper §4.1, Fig. 5b and 9b): the context is a long document cut to the
// prompt length; the model must repeat the document's first sentence; score = ROUGE-L F-measure of
// its answer (first line, leading whitespace dropped) against that sentence.
//
// Prompt (exactly L tokens):  BOS + document tokens (cut at L - 1 - |instruction|) + instruction,
//   instruction = "\n\nRepeat the first sentence of the text above:"
// The paper does not publish its prompt; this one is plain so base models can follow it.
//
// The document: leading heading paragraphs (fewer than 8 words, e.g. "CHAPTER 1. Loomings.") are
// dropped so the text starts with prose; its first sentence runs to the first . ! or ? followed by
// whitespace, and must have 3 to 64 words. A document shorter than the prompt continues with the
// next documents of the corpus (in corpus order), so the first sentence stays at the start.
// Each sample uses one document at every length, so the curve over lengths compares like with like.

import { Rng } from '../../util/rng.js';
import { FIRST_SENTENCE_INSTRUCTION, sentenceEnd } from '../../data/first-sentence.js';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import type { EvalModel } from '../model.js';
import type { TextDoc } from '../corpus.js';
import { rougeL, rougeTokens, mean } from '../metrics.js';
import { generateAnswers, generationCost, type PreparedTask } from '../task.js';
import { bosTokens, concatTokens, continuationTokens } from '../text.js';

// the instruction is shared with the first-sentence training rows (data/first-sentence.ts)
export { FIRST_SENTENCE_INSTRUCTION, sentenceEnd };

export interface FirstSentenceExample {
  length: number;
  sample: number;
  docId: string;
  reference: string;
  prompt: Int32Array;
  maxNew: number;
}

export interface FirstSentenceResult {
  task: 'first-sentence';
  instruction: string;
  /** mean ROUGE-L F (0..1) per prompt length */
  byLength: { length: number; rougeL: number; n: number; beyondTrained: boolean }[];
  rougeL: number;
  examples: { length: number; docId: string; reference: string; output: string; rougeL: number }[];
}

/** The text from its first prose paragraph, and that paragraph's first sentence; null if unusable. */
export function documentStart(text: string): { body: string; sentence: string } | null {
  const paras = text.split(/\n\s*\n/);
  let k = 0;
  while (k < Math.min(3, paras.length - 1) && rougeTokens(paras[k]!).length < 8) k++;
  const body = paras.slice(k).join('\n\n').replace(/^\s+/, '');
  const end = sentenceEnd(body);
  if (end < 0) return null;
  const sentence = body.slice(0, end).replace(/\s+/g, ' ').trim();
  const words = rougeTokens(sentence).length;
  if (words < 3 || words > 64) return null;
  return { body, sentence };
}

export interface FirstSentenceOptions {
  lengths: number[];
  samples?: number; // per length (default 4)
  seed?: number;
  trainedContext?: number;
}

export function firstSentenceExamples(tok: Tokenizer, docs: TextDoc[], opts: FirstSentenceOptions): FirstSentenceExample[] {
  const samples = opts.samples ?? 4;
  const instr = continuationTokens(tok, FIRST_SENTENCE_INSTRUCTION);
  const bos = bosTokens(tok);
  const maxL = Math.max(...opts.lengths);
  for (const L of opts.lengths) {
    if (L - bos.length - instr.length < 16) throw new Error(`first-sentence: length ${L} leaves no room for a document (the instruction takes ${instr.length} tokens)`);
  }
  const usable = docs.map((d, i) => ({ d, i, start: documentStart(d.text) })).filter((x) => x.start !== null);
  if (usable.length === 0) throw new Error('first-sentence: no document of the text has a usable first sentence (3 to 64 words ending in . ! or ?)');
  const rng = new Rng(opts.seed ?? 0);
  const order = rng.shuffle(usable.slice());
  const out: FirstSentenceExample[] = [];
  for (let s = 0; s < samples; s++) {
    const pick = order[s % order.length]!;
    const { body, sentence } = pick.start!;
    // Encode the document, then the following documents, until there is enough for the longest prompt.
    const parts: Int32Array[] = [tok.encode(body)];
    let n = parts[0]!.length;
    for (let j = 1; n < maxL && j <= docs.length * 64; j++) {
      const next = continuationTokens(tok, '\n\n' + docs[(pick.i + j) % docs.length]!.text);
      parts.push(next);
      n += next.length;
    }
    const docTokens = concatTokens(...parts);
    const refLen = continuationTokens(tok, ' ' + sentence).length;
    for (const L of opts.lengths) {
      const room = L - bos.length - instr.length;
      if (docTokens.length < room) throw new Error(`first-sentence: the text holds only ${docTokens.length} tokens, length ${L} needs ${room}`);
      out.push({
        length: L, sample: s, docId: docs[pick.i]!.id, reference: sentence,
        prompt: concatTokens(bos, docTokens.subarray(0, room), instr),
        maxNew: Math.min(128, refLen + 16),
      });
    }
  }
  return out;
}

/** ROUGE-L F of the answer's first line against the first sentence. */
export function scoreFirstSentence(output: string, reference: string): number {
  return rougeL(output, reference).f;
}

export function firstSentenceTask(model: EvalModel, docs: TextDoc[], opts: FirstSentenceOptions): PreparedTask<FirstSentenceResult> {
  const examples = firstSentenceExamples(model.tokenizer, docs, opts);
  const trained = opts.trainedContext ?? model.trainedContext ?? Infinity;
  return {
    name: 'first-sentence',
    ...generationCost(examples),
    run: async (tick) => {
      const scored = await generateAnswers(model, examples, tick, undefined, (e, output) => ({
        length: e.length, docId: e.docId, reference: e.reference, output, rougeL: scoreFirstSentence(output, e.reference),
      }));
      const byLength = opts.lengths.map((L) => {
        const xs = scored.filter((x) => x.length === L).map((x) => x.rougeL);
        return { length: L, rougeL: mean(xs), n: xs.length, beyondTrained: L > trained };
      });
      return { task: 'first-sentence', instruction: FIRST_SENTENCE_INSTRUCTION, byLength, rougeL: mean(scored.map((x) => x.rougeL)), examples: scored };
    },
  };
}
