// Chat-template fixtures shared by the tests: the real Meta-Llama-3-8B-Instruct template and a
// byte-level tokenizer with a model family's special tokens.

import { tokenizerFromJSON } from '../../src/data/tokenizer/load.js';
import type { Tokenizer } from '../../src/data/tokenizer/tokenizer.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { parseSources, readSources } from '../../src/data/sources.js';

export const LLAMA3_TEMPLATE = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

let byteLevel: Tokenizer | null = null;
/**
 * A byte-level BPE (as Llama 3's and SmolLM2's are) with a model family's special tokens added
 * (special: true), as their tokenizer.json files list them.
 */
export function withSpecials(names: string[]): Tokenizer {
  byteLevel ??= trainTokenizer([...readSources(parseSources('moby-dick'))].slice(0, 10), { vocabSize: 512, kind: 'byte-level' });
  const base = byteLevel;
  const j = JSON.parse(base.toJSON()) as { added_tokens: { id: number; content: string; special: boolean }[] };
  let id = base.vocabSize;
  for (const content of names.filter((n) => base.tokenToId(n) === undefined)) j.added_tokens.push({ id: id++, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true } as never);
  return tokenizerFromJSON(JSON.stringify(j), 'test tokenizer');
}

