// Test doubles of EvalModel that need no weights: an "oracle" that reads each prompt and answers it
// correctly (so every probe must score 1, which checks that the information is really in the prompt
// and that the scoring path works end to end), and fixed log-probability curves for the ppl probe.

import type { EvalModel, GenerateOptions } from '../../src/eval/model.js';
import type { Tokenizer } from '../../src/data/tokenizer/tokenizer.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { parseSources, readSources } from '../../src/data/sources.js';
import { documentStart } from '../../src/eval/probes/first-sentence.js';

let tokCache: Tokenizer | null = null;
/** A small byte-fallback BPE trained on 20 chapters of Moby-Dick (~0.1 s). */
export function testTokenizer(): Tokenizer {
  if (!tokCache) {
    const docs = [...readSources(parseSources('moby-dick'))].slice(0, 20);
    tokCache = trainTokenizer(docs, { vocabSize: 512 });
  }
  return tokCache;
}

/** The answer a perfect reader gives to one of our prompts (decoded text). */
export function oracleAnswer(prompt: string): string {
  let m: RegExpMatchArray | null;
  if (prompt.endsWith('The pass key is')) {
    return ` ${/The pass key is (\d+)\. Remember it\./.exec(prompt)![1]}.`;
  }
  if (prompt.endsWith('The best thing to do in San Francisco is')) {
    return ' eat a sandwich and sit in Dolores Park on a sunny day.';
  }
  if ((m = /What is the special magic number for (\S+) mentioned in the provided text\?/.exec(prompt))) {
    const key = m[1]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return ` ${new RegExp(`special magic numbers for ${key} is: (\\d+)\\.`).exec(prompt)![1]}.`;
  }
  if ((m = /Find all variables that are assigned the value (\d+)/.exec(prompt))) {
    const found = new Set<string>();
    let grew = true;
    const direct = [...prompt.matchAll(/VAR ([A-Z]{5}) = (\d+)\./g)].filter((x) => x[2] === m![1]).map((x) => x[1]!);
    direct.forEach((v) => found.add(v));
    while (grew) {
      grew = false;
      for (const x of prompt.matchAll(/VAR ([A-Z]{5}) = VAR ([A-Z]{5})\./g)) {
        if (found.has(x[2]!) && !found.has(x[1]!)) { found.add(x[1]!); grew = true; }
      }
    }
    return ` ${[...found].join(', ')}`;
  }
  if (prompt.includes('What are the 10 most common words in the above list?')) {
    const counts = new Map<string, number>();
    for (const x of prompt.matchAll(/\d+\. ([a-z]+)(?= \d+\.|\s*\nQuestion)/g)) counts.set(x[1]!, (counts.get(x[1]!) ?? 0) + 1);
    return ' ' + [...counts].sort((a, b) => b[1] - a[1]).slice(0, 10).map((x) => x[0]).join(', ');
  }
  if (prompt.endsWith('Repeat the first sentence of the text above:')) {
    return ' ' + documentStart(prompt.replace(/^<s>/, ''))!.sentence;
  }
  if ((m = /The answer is (.+?) Q: [^\n]*, A:$/.exec(prompt))) return ` ${m[1]}`;
  return ' I do not know.';
}

export interface OracleModel extends EvalModel {
  prompts: Int32Array[];
}

/**
 * generate: the oracle's answer. tokenLogprobs: -(1 + 1/i) at position i (a loss that falls with
 * context); when scoring a continuation (from > 1), -0.1 per token if the continuation's text occurs
 * in the context and -1 otherwise (a copying reader, so multiple choice picks the stated choice).
 */
export function oracleModel(tok: Tokenizer, opts: { trainedContext?: number } = {}): OracleModel {
  const prompts: Int32Array[] = [];
  return {
    name: 'oracle', maxContext: 1 << 20, tokenizer: tok, prompts,
    ...(opts.trainedContext !== undefined ? { trainedContext: opts.trainedContext } : {}),
    async tokenLogprobs(tokens: Int32Array, from = 1, onProgress?: (d: number, t: number) => void): Promise<Float64Array> {
      const start = Math.max(1, from);
      const out = new Float64Array(Math.max(0, tokens.length - start));
      const copied = from > 1 && tok.decode(tokens.subarray(0, from)).includes(tok.decode(tokens.subarray(from)).trim());
      for (let i = start; i < tokens.length; i++) out[i - start] = from > 1 ? (copied ? -0.1 : -1) : -(1 + 1 / i);
      onProgress?.(tokens.length, tokens.length);
      return out;
    },
    async generate(prompt: Int32Array, maxNew: number, o: GenerateOptions = {}): Promise<Int32Array> {
      prompts.push(prompt);
      const text = tok.decode(prompt);
      const ids = Int32Array.from(tok.encode(oracleAnswer(text))).subarray(0, maxNew);
      o.onProgress?.(prompt.length + ids.length, prompt.length + maxNew);
      return ids;
    },
  };
}

/**
 * tokenLogprobs from a rule on (tokens, position) alone; generate is refused. `logprob(tokens, i)` is
 * log p(tokens[i] | tokens[<i]).
 */
export function ruleModel(tok: Tokenizer, name: string, logprob: (tokens: Int32Array, i: number) => number, opts: { trainedContext?: number } = {}): EvalModel {
  return {
    name, maxContext: 1 << 20, tokenizer: tok,
    ...(opts.trainedContext !== undefined ? { trainedContext: opts.trainedContext } : {}),
    async tokenLogprobs(tokens: Int32Array, from = 1, onProgress?: (d: number, t: number) => void): Promise<Float64Array> {
      const start = Math.max(1, from);
      const out = new Float64Array(Math.max(0, tokens.length - start));
      for (let i = start; i < tokens.length; i++) out[i - start] = logprob(tokens, i);
      onProgress?.(tokens.length, tokens.length);
      return out;
    },
    async generate(): Promise<Int32Array> {
      throw new Error(`${name} does not generate`);
    },
  };
}

/**
 * An induction-head reader: to predict tokens[i] it finds the longest suffix (up to 4 tokens) of
 * tokens[<i] that occurred before, takes the token that followed its latest occurrence, and gives
 * the truth log(0.9) when that is it, log(0.1 / V) otherwise; with no earlier occurrence, log(1 / V).
 * Inside a repeated span it predicts (almost) every token; at the start of a text it knows nothing.
 */
export function inductionModel(tok: Tokenizer, opts: { trainedContext?: number } = {}): EvalModel {
  const V = tok.vocabSize;
  return ruleModel(tok, 'induction', (t, i) => {
    for (let k = Math.min(4, i); k >= 1; k--) {
      for (let j = i - 1; j >= k; j--) {
        // does t[j-k .. j-1] equal t[i-k .. i-1]? then t[j] followed it
        let same = true;
        for (let q = 1; q <= k && same; q++) same = t[j - q] === t[i - q];
        if (same && j < i) return t[j] === t[i] ? Math.log(0.9) : Math.log(0.1 / V);
      }
    }
    return -Math.log(V);
  }, opts);
}

/** A reader that ignores its context: log p depends on the token alone. */
export function contextFreeModel(tok: Tokenizer, opts: { trainedContext?: number } = {}): EvalModel {
  return ruleModel(tok, 'context-free', (t, i) => -(2 + (t[i]! % 7) / 7), opts);
}
