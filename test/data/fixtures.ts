// Shared fixtures of the data tests: the bundled corpora, small trained tokenizers, tokenizer.json
// variants with the structure of real Llama files (none can be downloaded here), temp folders.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseSources, readSources, type Document } from '../../src/data/sources.js';
import { trainBpe, type TrainResult } from '../../src/data/tokenizer/train.js';
import { docSetFromArrays, type Dataset } from '../../src/data/dataset.js';

const cache = new Map<string, Document[]>();
export function corpus(list: string): Document[] {
  let d = cache.get(list);
  if (!d) {
    d = [...readSources(parseSources(list))];
    cache.set(list, d);
  }
  return d;
}

/** every k-th document of a corpus (a deterministic sample) */
export function sample(list: string, k: number): Document[] {
  return corpus(list).filter((_, i) => i % k === 0);
}

const trained = new Map<string, TrainResult>();
export function trained1k(kind: 'byte-fallback' | 'byte-level' = 'byte-fallback', list = 'moby-dick', vocabSize = 1024): TrainResult {
  const key = `${kind}:${list}:${vocabSize}`;
  let r = trained.get(key);
  if (!r) {
    r = trainBpe(corpus(list), { vocabSize, kind });
    trained.set(key, r);
  }
  return r;
}

/**
 * A tokenizer.json shaped like Meta's Llama 2 file as converted by transformers from SentencePiece:
 * merges are EVERY split of each vocabulary piece into two pieces, ordered by the piece's id (so many
 * merges share a result), written in the newer [a, b] array format, plus "ignore_merges": false.
 */
export function llama2Converted(trainedJson: string): Record<string, unknown> {
  const j = JSON.parse(trainedJson);
  const vocab: Record<string, number> = j.model.vocab;
  const merges: [string, string, number, number][] = [];
  for (const [tok, id] of Object.entries(vocab)) {
    if (id < 259 || [...tok].length < 2) continue;
    for (let k = 1; k < tok.length; k++) {
      const a = tok.slice(0, k), b = tok.slice(k);
      if (a.length && b.length && vocab[a] !== undefined && vocab[b] !== undefined && !/[\ud800-\udbff]$/.test(a)) merges.push([a, b, id, vocab[a]!]);
    }
  }
  merges.sort((x, y) => x[2] - y[2] || x[3] - y[3]);
  j.model.merges = merges.map(([a, b]) => [a, b]);
  return j;
}

/** Same vocabulary, SentencePiece-style Metaspace pre-tokenizer and decoder instead of the normalizer. */
export function metaspaceVariant(trainedJson: string, prependScheme: 'first' | 'always', split: boolean): Record<string, unknown> {
  const j = JSON.parse(trainedJson);
  j.normalizer = null;
  j.pre_tokenizer = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: prependScheme, split };
  j.decoder = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: prependScheme, split };
  return j;
}

export function withTempDir<T>(f: (dir: string) => T): T {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-data-'));
  try {
    return f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Tricky strings every tokenizer must handle. */
export const TRICKY = [
  'Hello world', 'Hello  world', '  two leading spaces', 'trailing spaces  ', ' ', '   ', '\n', 'a\n\n\tb\r\nc',
  "I'LL DON'T it's we've", '😀👍🏽 emoji 🇺🇸 flags', '中文字符测试，日本語のテキスト', 'e\u0301 combining a\u0308\u0301',
  '\u0000\u0001\u007f control \u001b[0m', 'nbsp\u00a0x line\u2028sep ideographic\u3000space', '123456789 1,000.5 ½ Ⅻ',
  'x=>{return a?.b??c;}', 'word▁with▁metaspace ▁', '\uFEFFbom', 'Ωμέγα ἀρχή', 'ﬁ ligature and ẞ', 'tab\there',
];

/** An in-memory Dataset: every 4th moby-dick chapter tokenized with trained1k() (no folder on disk). */
export function memoryDataset(): Dataset {
  const tok = trained1k().tokenizer;
  const docs = sample('moby-dick', 4).map((d) => ({ source: d.source, id: d.id, tokens: tok.encode(d.text) }));
  return { dir: '(memory)', manifest: {} as Dataset['manifest'], tokenizer: tok, train: docSetFromArrays('train', docs), val: docSetFromArrays('val', docs.slice(0, 2)) };
}

export async function withTempDirAsync<T>(f: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-data-'));
  try {
    return await f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
