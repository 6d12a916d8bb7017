// A prepared data folder in the formats the big trainers read, so the recipe carries to them:
//
// - Megatron-LM's indexed dataset (also read by NeMo and GPT-NeoX): PREFIX.bin holds every sequence's
//   token ids back to back in one dtype; PREFIX.idx is
//     "MMIDIDX\0\0" (9 bytes) | version u64 = 1 | dtype code u8 | sequence count u64 |
//     document count u64 (= documents + 1) | sequence lengths int32[sequences] |
//     sequence byte offsets into .bin int64[sequences] | document indices int64[documents + 1]
//   all little-endian (megatron/core/datasets/indexed_dataset.py, _IndexWriter). One sequence per
//   document, written as BOS + tokens + EOS (Megatron's preprocess_data.py with --append-eod and a
//   BOS-adding Llama tokenizer); dtype uint16 below 65,500 ids, else int32 (its best_fitting_dtype).
// - JSONL, {"text": ...} per document, for trainers that tokenize on the fly (torchtitan, HF).
//
// The training split goes out in the order of one epoch of the run's mix (source weights, long-
// document up-sampling: data/mix.ts), so a trainer that reads it front to back sees longctx's
// proportions; the validation split as it is.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Dataset, DocSet } from '../data/dataset.js';
import { epochOrder, type MixOptions } from '../data/mix.js';
import { writeFileAtomic } from '../util/atomic.js';

export const MEGATRON_INDEX_HEADER = Buffer.from('MMIDIDX\x00\x00', 'latin1');
/** Megatron's DType codes (megatron/core/datasets/indexed_dataset.py) */
export const MEGATRON_DTYPE = { uint8: 1, int8: 2, int16: 3, int32: 4, int64: 5, float64: 6, float32: 7, uint16: 8 } as const;

export interface ExportedSplit { split: 'train' | 'val'; files: string[]; documents: number; tokens: number }

/** The document order of a split: one epoch of the mix for training, the held-out documents in order. */
function orderOf(docs: DocSet, mix: MixOptions, seed: number): Uint32Array {
  return docs.split === 'train' ? epochOrder(docs, mix, seed, 0, true) : Uint32Array.from({ length: docs.size }, (_, i) => i);
}

/** BOS + tokens + EOS of document i (a missing special id is left out). */
function sequenceOf(ds: Dataset, docs: DocSet, i: number): number[] {
  const t = ds.tokenizer;
  return [...(t.bosId >= 0 ? [t.bosId] : []), ...docs.tokens(i), ...(t.eosId >= 0 ? [t.eosId] : [])];
}

/** PREFIX.bin and PREFIX.idx of one split (atomically, each). */
export function writeMegatronSplit(ds: Dataset, docs: DocSet, prefix: string, mix: MixOptions, seed: number): ExportedSplit {
  const order = orderOf(docs, mix, seed);
  const vocab = ds.tokenizer.vocabSize;
  const wide = vocab >= 65500;
  const itemSize = wide ? 4 : 2;
  const lengths = new Int32Array(order.length); // (sequences)
  const pointers = new BigInt64Array(order.length); // (sequences) byte offsets
  let total = 0;
  order.forEach((d, k) => {
    lengths[k] = docs.lengths[d]! + (ds.tokenizer.bosId >= 0 ? 1 : 0) + (ds.tokenizer.eosId >= 0 ? 1 : 0);
    pointers[k] = BigInt(total * itemSize);
    total += lengths[k]!;
  });
  const bin = Buffer.alloc(total * itemSize);
  let at = 0;
  for (const d of order) {
    for (const id of sequenceOf(ds, docs, d)) {
      if (wide) bin.writeInt32LE(id, at);
      else bin.writeUInt16LE(id, at);
      at += itemSize;
    }
  }
  const docIndices = new BigInt64Array(order.length + 1).map((_, i) => BigInt(i)); // (documents + 1): one sequence each
  const head = Buffer.alloc(9 + 8 + 1 + 8 + 8);
  MEGATRON_INDEX_HEADER.copy(head, 0);
  head.writeBigUInt64LE(1n, 9);
  head.writeUInt8(wide ? MEGATRON_DTYPE.int32 : MEGATRON_DTYPE.uint16, 17);
  head.writeBigUInt64LE(BigInt(order.length), 18);
  head.writeBigUInt64LE(BigInt(docIndices.length), 26);
  const idx = Buffer.concat([head, Buffer.from(lengths.buffer), Buffer.from(pointers.buffer), Buffer.from(docIndices.buffer)]);
  writeFileAtomic(`${prefix}.bin`, bin);
  writeFileAtomic(`${prefix}.idx`, idx);
  return { split: docs.split, files: [`${prefix}.bin`, `${prefix}.idx`], documents: order.length, tokens: total };
}

/** PREFIX.jsonl of one split: {"text", "source", "id"} per document, decoded with the folder's tokenizer. */
export function writeJsonlSplit(ds: Dataset, docs: DocSet, prefix: string, mix: MixOptions, seed: number): ExportedSplit {
  const order = orderOf(docs, mix, seed);
  const lines: string[] = [];
  let tokens = 0;
  for (const d of order) {
    const v = docs.doc(d);
    lines.push(JSON.stringify({ text: ds.tokenizer.decode(v.tokens), source: v.source, id: v.id }));
    tokens += v.length;
  }
  writeFileAtomic(`${prefix}.jsonl`, lines.join('\n') + (lines.length > 0 ? '\n' : ''));
  return { split: docs.split, files: [`${prefix}.jsonl`], documents: order.length, tokens };
}

export interface DataExportOptions { format: 'megatron' | 'jsonl'; out: string; mix?: MixOptions; seed?: number }

/**
 * Both splits of a prepared data folder: OUT_train_text_document.{bin,idx} and
 * OUT_val_text_document.{bin,idx} (Megatron's naming for a "text" key at document level), or
 * OUT_train.jsonl and OUT_val.jsonl.
 */
export function exportData(ds: Dataset, o: DataExportOptions): ExportedSplit[] {
  const dir = path.dirname(path.resolve(o.out));
  fs.mkdirSync(dir, { recursive: true });
  const mix = o.mix ?? {};
  const seed = o.seed ?? 0;
  return [ds.train, ds.val].map((docs) => (o.format === 'megatron'
    ? writeMegatronSplit(ds, docs, `${o.out}_${docs.split}_text_document`, mix, seed)
    : writeJsonlSplit(ds, docs, `${o.out}_${docs.split}`, mix, seed)));
}
