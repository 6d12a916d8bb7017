// longctx data pipeline: text sources -> tokenizer -> token shards -> mix + pack -> batches.
//
// Stable API (what the trainer, the recipes and the evaluation use):
//
// Tokenizer (tokenizer/tokenizer.ts, tokenizer/load.ts, tokenizer/train.ts)
//   interface Tokenizer {
//     vocabSize, bosId, eosId, unkId (-1 when absent), kind: 'byte-fallback' | 'byte-level',
//     specialIds: ReadonlySet<number>,
//     encode(text, { bos?, eos?, splitSpecial? } = {}): Int32Array
//     decode(ids, { skipSpecial? } = {}): string
//     encodeBytes(bytes, opts?): Int32Array        decodeBytes(ids, opts?): Uint8Array
//     tokenToId(token): number | undefined          idToToken(id): string | undefined
//     toJSON(): string  (the Hugging Face tokenizer.json text)      hash(): string (sha256 of it)
//   }
//   Guarantees: ids equal Hugging Face `tokenizers` for the same tokenizer.json (BPE: Llama 2
//   byte-fallback, Metaspace, Llama 3 byte-level); decode(encode(s)) === s for every well-formed
//   string with lossless normalizers; decodeBytes(encodeBytes(b)) equals any byte string b; a lone
//   surrogate is encoded as U+FFFD. Literal "<s>" in text is text unless splitSpecial is set.
//   loadTokenizer(pathOrDir): HfTokenizer          tokenizerFromJSON(text, where?, config?)
//   saveTokenizer(dir, tok)                        (tokenizer.json + tokenizer_config.json, atomic)
//   trainTokenizer(docs: Iterable<string | { text }>, { vocabSize, kind?, characterCoverage?,
//     minFrequency?, maxTokenLength?, onProgress? }): HfTokenizer
//   trainBpe(docs, opts): { tokenizer, json, merges, alphabet, words, chars }  (the same, with figures)
//
// Sources (sources.ts)
//   parseSources("moby-dick,sotu,code,dir:./docs:*.md,jsonl:x.jsonl:body"): SourceSpec[]
//   readSource(spec, { skipBad?, onSkip? }) / readSources(specs, opts): Generator<Document>
//   Document = { source, id, text }
//
// Shards and datasets (prepare.ts, shards.ts, dataset.ts)
//   prepareData({ sources, tokenizer, out, valFraction?, seed?, shardTokens?, skipBad?, progress?, log? })
//   openDataset(dir): { dir, manifest, tokenizer, train: DocSet, val: DocSet }
//   DocSet = { split, size, totalTokens, sources, lengths, sourceOf, fingerprint, tokens(i), doc(i) }
//   longDocuments(docset, minTokens): DocView[]   (longest first; for loss-vs-context evaluation)
//   isValidationDoc(source, id, valFraction, seed)
//
// Mix and batches (mix.ts, pack.ts)
//   MixOptions = { sourceWeights?: Record<string, number>, upsampleLongerThan?, upsampleFactor? }
//   docWeights(docset, mix), epochOrder(docset, mix, seed, epoch, shuffle?)
//   batchShape(tokensPerStep, seqLen): { batchSize, seqLen }
//   createBatchIterator(dataset | docset, { seqLen, batchSize, seed?, mix?, split?, shuffle?, bosId?, eosId? })
//     -> { next(): { tokens, targets, B, T, epoch }, reshape(seqLen, batchSize?), state(), ... }
//     (reshape without a batch size keeps tokens per step: B = B*T / newT)
//   restoreBatchIterator(dataset | docset, state)
//
// Statistics (stats.ts)
//   computeStats(dataset, mix?): DataStats; formatStats(stats): string

export type { Tokenizer, EncodeOptions, DecodeOptions } from './tokenizer/tokenizer.js';
export { HfTokenizer } from './tokenizer/tokenizer.js';
export { loadTokenizer, saveTokenizer, tokenizerFromJSON, tokenizerPath } from './tokenizer/load.js';
export { trainTokenizer, trainBpe, tokenizerJSON, byteLevelTokenizerJSON, type TrainOptions, type TrainResult } from './tokenizer/train.js';
export { GPT2_PATTERN, LLAMA3_PATTERN } from './tokenizer/patterns.js';
export { parseSources, parseSource, readSource, readSources, readUtf8File, globToRegExp, type Document, type SourceSpec, type ReadOptions } from './sources.js';
export { prepareData, readManifest, isValidationDoc, type Manifest, type PrepareOptions, type PrepareResult, type SourceRecord, type ShardRecord } from './prepare.js';
export { readShard, writeShard, encodeShard, parseShard, SHARD_MAGIC, SHARD_VERSION, type Shard, type TokenArray } from './shards.js';
export { openDataset, longDocuments, docSetFromArrays, type Dataset, type DocSet, type DocView } from './dataset.js';
export { docWeights, epochOrder, checkMix, parseSourceWeights, parseUpsample, type MixOptions } from './mix.js';
export { createBatchIterator, restoreBatchIterator, batchShape, type Batch, type BatchIterator, type BatchIteratorState, type BatchOptions } from './pack.js';
export { computeStats, formatStats, LENGTH_BUCKETS, SHARE_LENGTHS, type DataStats } from './stats.js';
export { Progress } from '../util/progress.js';
