// `longctx data stats`: what a prepared folder holds, and what a mix does to it.

import type { Dataset, DocSet } from './dataset.js';
import { docWeights, type MixOptions } from './mix.js';

export const LENGTH_BUCKETS: { label: string; lo: number; hi: number }[] = [
  { label: '<=1k', lo: 0, hi: 1024 },
  { label: '1k-2k', lo: 1024, hi: 2048 },
  { label: '2k-4k', lo: 2048, hi: 4096 },
  { label: '4k-8k', lo: 4096, hi: 8192 },
  { label: '8k-16k', lo: 8192, hi: 16384 },
  { label: '16k-32k', lo: 16384, hi: 32768 },
  { label: '32k+', lo: 32768, hi: Infinity },
];
/** "share of training tokens from documents >= L" thresholds */
export const SHARE_LENGTHS = [1024, 2048, 4096, 8192, 16384, 32768];

export interface DataStats {
  dir: string;
  tokenizer: { vocabSize: number; kind: string; sha256: string };
  sources: { name: string; train: { documents: number; tokens: number; mixedTokens: number }; val: { documents: number; tokens: number }; longest: number }[];
  /** training documents by length in tokens; `mixedTokens`: expected tokens per epoch after the mix */
  histogram: { bucket: string; documents: number; tokens: number; mixedTokens: number }[];
  /** share of training tokens coming from documents of at least `minLength` tokens */
  longShare: { minLength: number; before: number; after: number }[];
  totals: { train: { documents: number; tokens: number; mixedTokens: number }; val: { documents: number; tokens: number } };
  mix: MixOptions;
}

function bucketOf(len: number): number {
  for (let k = 0; k < LENGTH_BUCKETS.length; k++) if (len <= LENGTH_BUCKETS[k]!.hi) return k;
  return LENGTH_BUCKETS.length - 1;
}

export function computeStats(ds: Dataset, mix: MixOptions = {}): DataStats {
  const tr: DocSet = ds.train;
  const w = docWeights(tr, mix);
  const sources = ds.train.sources.map((name) => ({ name, train: { documents: 0, tokens: 0, mixedTokens: 0 }, val: { documents: 0, tokens: 0 }, longest: 0 }));
  const hist = LENGTH_BUCKETS.map((b) => ({ bucket: b.label, documents: 0, tokens: 0, mixedTokens: 0 }));
  const share = SHARE_LENGTHS.map((L) => ({ minLength: L, t: 0, m: 0 }));
  let tokens = 0, mixed = 0;
  for (let i = 0; i < tr.size; i++) {
    const len = tr.lengths[i]!;
    const s = sources[tr.sourceOf[i]!]!;
    const mt = len * w[i]!;
    s.train.documents++;
    s.train.tokens += len;
    s.train.mixedTokens += mt;
    s.longest = Math.max(s.longest, len);
    const h = hist[bucketOf(len)]!;
    h.documents++;
    h.tokens += len;
    h.mixedTokens += mt;
    for (const sh of share) if (len >= sh.minLength) { sh.t += len; sh.m += mt; }
    tokens += len;
    mixed += mt;
  }
  const va = ds.val;
  for (let i = 0; i < va.size; i++) {
    const s = sources[va.sourceOf[i]!]!;
    s.val.documents++;
    s.val.tokens += va.lengths[i]!;
    s.longest = Math.max(s.longest, va.lengths[i]!);
  }
  return {
    dir: ds.dir,
    tokenizer: { vocabSize: ds.tokenizer.vocabSize, kind: ds.tokenizer.kind, sha256: ds.tokenizer.hash() },
    sources,
    histogram: hist,
    longShare: share.map((s) => ({ minLength: s.minLength, before: tokens ? s.t / tokens : 0, after: mixed ? s.m / mixed : 0 })),
    totals: { train: { documents: tr.size, tokens, mixedTokens: mixed }, val: { documents: va.size, tokens: va.totalTokens } },
    mix,
  };
}

function n(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}
function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

export function formatStats(s: DataStats): string {
  const hasMix = Object.keys(s.mix.sourceWeights ?? {}).length > 0 || (s.mix.upsampleFactor !== undefined && s.mix.upsampleFactor !== 1);
  const L: string[] = [];
  L.push(`data        ${s.dir}`);
  L.push(`tokenizer   ${s.tokenizer.kind} BPE, vocab ${s.tokenizer.vocabSize}, sha256 ${s.tokenizer.sha256.slice(0, 12)}`);
  if (hasMix) L.push(`mix         ${JSON.stringify(s.mix)}`);
  L.push('');
  const w = Math.max(8, ...s.sources.map((x) => x.name.length));
  L.push(`${'source'.padEnd(w)}  ${'train docs'.padStart(10)}  ${'train tokens'.padStart(13)}  ${'share'.padStart(6)}  ${hasMix ? `${'after mix'.padStart(13)}  ${'share'.padStart(6)}  ` : ''}${'val docs'.padStart(8)}  ${'val tokens'.padStart(11)}  ${'longest'.padStart(9)}`);
  const T = s.totals.train.tokens || 1, M = s.totals.train.mixedTokens || 1;
  for (const x of s.sources) {
    L.push(`${x.name.padEnd(w)}  ${n(x.train.documents).padStart(10)}  ${n(x.train.tokens).padStart(13)}  ${pct(x.train.tokens / T).padStart(6)}  ${hasMix ? `${n(x.train.mixedTokens).padStart(13)}  ${pct(x.train.mixedTokens / M).padStart(6)}  ` : ''}${n(x.val.documents).padStart(8)}  ${n(x.val.tokens).padStart(11)}  ${n(x.longest).padStart(9)}`);
  }
  L.push(`${'total'.padEnd(w)}  ${n(s.totals.train.documents).padStart(10)}  ${n(s.totals.train.tokens).padStart(13)}  ${'100%'.padStart(6)}  ${hasMix ? `${n(s.totals.train.mixedTokens).padStart(13)}  ${'100%'.padStart(6)}  ` : ''}${n(s.totals.val.documents).padStart(8)}  ${n(s.totals.val.tokens).padStart(11)}`);
  L.push('');
  L.push('training documents by length (tokens)');
  const maxTok = Math.max(1, ...s.histogram.map((h) => h.tokens));
  L.push(`${'length'.padEnd(8)}  ${'docs'.padStart(6)}  ${'tokens'.padStart(12)}  ${'share'.padStart(6)}  ${hasMix ? `${'after mix'.padStart(9)}  ` : ''}`);
  for (const h of s.histogram) {
    const bar = '#'.repeat(Math.round((30 * h.tokens) / maxTok));
    L.push(`${h.bucket.padEnd(8)}  ${n(h.documents).padStart(6)}  ${n(h.tokens).padStart(12)}  ${pct(h.tokens / T).padStart(6)}  ${hasMix ? `${pct(h.mixedTokens / M).padStart(9)}  ` : ''}${bar}`);
  }
  L.push('');
  L.push(`share of training tokens from documents >= length${hasMix ? ' (before -> after the mix)' : ''}`);
  for (const x of s.longShare) {
    L.push(`  >= ${String(x.minLength).padStart(6)}  ${pct(x.before).padStart(6)}${hasMix ? `  ->  ${pct(x.after).padStart(6)}` : ''}`);
  }
  return L.join('\n') + '\n';
}
