// An offline stand-in generator for `instruct generate --generator cloze`: a rule-based EvalModel
// that answers our two prompts the way a chat model would, so the whole flow (generate -> train ->
// chat) runs on a fresh clone with no chat model at hand. It is NOT the paper's method (which asks
// Llama 2 Chat): its questions are cloze questions about one sentence of the chunk ("which word is
// missing from: ...?"), its answer that word, and its verdict checks that the sentence with the word
// filled in is in the chunk. Still a long-context task for the tuned model: it must find the
// sentence in the whole document and copy the word.

import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import type { EvalModel } from '../eval/model.js';
import { splitSentences } from '../eval/text.js';
import { deriveSeed } from '../util/rng.js';

const CHUNK = /"""([\s\S]*?)"""/;

/** The cloze question and answer for a chunk (deterministic in the chunk's text), or null if no sentence has a word to blank. */
export function clozePair(chunk: string, short: boolean): { question: string; answer: string; word: string } | null {
  const sentences = splitSentences(chunk, 300).map((s) => s.trim().replace(/\s+/g, ' ')).filter((s) => s.length >= 30 && s.length <= 300);
  if (sentences.length === 0) return null;
  const start = deriveSeed(0, chunk) % sentences.length;
  for (let k = 0; k < sentences.length; k++) {
    const s = sentences[(start + k) % sentences.length]!;
    const words = [...s.matchAll(/\b[A-Za-z]{5,}\b/g)];
    if (words.length === 0) continue;
    const w = words.reduce((a, b) => (b[0].length > a[0].length ? b : a));
    const blanked = `${s.slice(0, w.index)}___${s.slice(w.index! + w[0].length)}`;
    return {
      question: `Which word is missing from this sentence of the text: "${blanked}"?`,
      answer: short ? w[0] : `The missing word is "${w[0]}".`,
      word: w[0],
    };
  }
  return null;
}

export class ClozeGenerator implements EvalModel {
  readonly name = 'cloze';
  readonly concurrency = 1;
  readonly info = { kind: 'cloze', note: 'rule-based stand-in for a chat model (offline demos and tests)' };

  constructor(readonly tokenizer: Tokenizer, readonly maxContext: number) {}

  async tokenLogprobs(): Promise<Float64Array> {
    throw new Error('the cloze generator only generates');
  }

  async generate(prompt: Int32Array, maxNew: number): Promise<Int32Array> {
    const text = this.tokenizer.decode(prompt, { skipSpecial: true });
    const chunk = CHUNK.exec(text)?.[1] ?? '';
    let reply: string;
    const verify = /\nQuestion: ([\s\S]*?)\nProposed answer: ([\s\S]*?)\s*\[\/INST\]\s*$/.exec(text);
    if (verify) {
      const blanked = /"([\s\S]*)"\?$/.exec(verify[1]!.trim())?.[1];
      const word = /^The missing word is "(.*)"\.$/.exec(verify[2]!.trim())?.[1] ?? verify[2]!.trim();
      const filled = blanked?.replace('___', word);
      reply = filled !== undefined && chunk.replace(/\s+/g, ' ').includes(filled) ? 'Yes, the sentence is in the text.' : 'No, the text does not have that sentence.';
    } else {
      const pair = clozePair(chunk, /short answer/.test(text));
      reply = pair ? `<question>${pair.question}</question>\n<answer>${pair.answer}</answer>` : 'The text has no sentence to ask about.';
    }
    const ids = this.tokenizer.encode(reply);
    const out = new Int32Array(Math.min(maxNew, ids.length + (this.tokenizer.eosId >= 0 ? 1 : 0)));
    out.set(ids.subarray(0, out.length));
    if (out.length > ids.length) out[ids.length] = this.tokenizer.eosId;
    return out;
  }
}
