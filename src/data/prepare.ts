// `longctx data prepare`: sources -> tokenizer -> token shards + manifest.json.
//
// Folder layout:
//   DIR/manifest.json        what is there (written atomically after every shard; status "partial"
//                            until every source is done, then "complete")
//   DIR/tokenizer.json       a copy of the tokenizer used (its sha256 is in the manifest)
//   DIR/tokenizer_config.json
//   DIR/shards/<source>-<NNNNN>.<train|val>.bin
//
// Validation documents are held out by document: a document is in "val" when
// sha256(seed, source, id) / 2^32 < valFraction, so the split does not depend on order or on the
// other documents. Documents are stored without BOS/EOS (packing adds them); empty ones are dropped.
//
// Re-running skips finished work: the manifest records a key (tokenizer hash, val fraction, seed,
// shard size, format version) and per source a fingerprint (sha256 of its documents). A source whose
// fingerprint matches and is done is skipped; a partly done one resumes after its last complete shard
// (shards hold whole documents, and both splits are flushed together, so "documents before N" is the
// exact resume point). A changed key rebuilds everything. Shards are written atomically, so an
// interrupted run leaves only complete shards behind.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../util/atomic.js';
import { lockFolder, unlockFolder, LOCK } from '../util/lock.js';
import { readSource, type SourceSpec } from './sources.js';
import { writeShard, bytesPerTokenFor, SHARD_VERSION } from './shards.js';
import { loadTokenizer, saveTokenizer } from './tokenizer/load.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';
import { Progress } from '../util/progress.js';
import { jsonErrorText } from '../util/json-error.js';

export const MANIFEST_FORMAT = 'longctx-data';
export const MANIFEST_VERSION = 1;

export interface ShardRecord {
  file: string; // relative to the data folder
  split: 'train' | 'val';
  documents: number;
  tokens: number;
  bytes: number;
  sha256: string;
  /** documents of the source (in source order) done once this shard was written */
  endDoc: number;
}

export interface SplitCounts {
  documents: number;
  tokens: number;
}

export interface SourceRecord {
  name: string;
  spec: string;
  fingerprint: string;
  done: boolean;
  /** documents (in source order) already in complete shards */
  nextDoc: number;
  /** documents read (skipped bad records not included) */
  documents: number;
  bytes: number;
  emptyDocuments: number;
  skippedRecords: number;
  train: SplitCounts;
  val: SplitCounts;
  shards: ShardRecord[];
}

export interface PrepareConfig {
  valFraction: number;
  seed: number;
  shardTokens: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  status: 'partial' | 'complete';
  key: string;
  tokenizer: { file: string; sha256: string; vocabSize: number; bosId: number; eosId: number; kind: string };
  config: PrepareConfig & { bytesPerToken: 2 | 4; shardVersion: number };
  sources: SourceRecord[];
  totals: { train: SplitCounts; val: SplitCounts };
  updated: string;
}

export interface PrepareOptions {
  sources: SourceSpec[];
  /** tokenizer.json or a folder with one */
  tokenizer: string;
  out: string;
  /** share of documents held out for validation (default 0.05) */
  valFraction?: number;
  seed?: number;
  /** flush shards when this many tokens are buffered (default 2^24) */
  shardTokens?: number;
  skipBad?: boolean;
  /** progress bar on stderr (default true) */
  progress?: boolean;
  /** one-line notes (skips, resumes) */
  log?: (line: string) => void;
  /** rebuild a folder prepared with another tokenizer or settings, or drop sources it holds that are not listed (default: refuse) */
  force?: boolean;
}

export interface PrepareResult {
  manifest: Manifest;
  /** sources skipped because they were already done */
  reused: string[];
  /** sources (re)tokenized in this run */
  built: string[];
  skippedRecords: number;
}

/** Is document (source, id) held out for validation? Deterministic in (seed, source, id). */
export function isValidationDoc(source: string, id: string, valFraction: number, seed: number): boolean {
  if (valFraction <= 0) return false;
  if (valFraction >= 1) return true;
  const h = createHash('sha256').update(`${seed}\0${source}\0${id}`).digest();
  return h.readUInt32BE(0) / 2 ** 32 < valFraction;
}

function slug(name: string): string {
  const s = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'source';
  return `${s}-${createHash('sha256').update(name).digest('hex').slice(0, 6)}`;
}

export function readManifest(dir: string): Manifest | null {
  const p = path.join(dir, 'manifest.json');
  if (!fs.existsSync(p)) return null;
  let j: unknown;
  try {
    j = JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch (e) {
    throw new Error(`${p}: not valid JSON (${jsonErrorText(e)}); delete the folder and re-run longctx data prepare`);
  }
  const m = j as Partial<Manifest>;
  if (m.format !== MANIFEST_FORMAT) throw new Error(`${p}: not a longctx data manifest (format ${JSON.stringify(m.format)})`);
  if (m.version !== MANIFEST_VERSION) throw new Error(`${p}: manifest version ${m.version}; this longctx reads version ${MANIFEST_VERSION} (re-run longctx data prepare into a new folder)`);
  if (!Array.isArray(m.sources) || typeof m.key !== 'string' || typeof m.tokenizer !== 'object' || m.tokenizer === null) throw new Error(`${p}: manifest is missing fields; delete the folder and re-run longctx data prepare`);
  checkManifestFields(m as Manifest, p);
  return m as Manifest;
}

// A shard's file name as prepare writes it: the only form a manifest may name, so that a manifest
// edited by hand (or by an attacker) cannot make prepare delete, or a reader open, a file outside
// the data folder ("../victim.txt", "/etc/passwd", "shards/../../x").
const SHARD_FILE = /^shards\/[a-z0-9][a-z0-9-]*\.(train|val)\.bin$/;

/** Every manifest field that names a file or a count is checked before anything acts on it; the error names the field. */
function checkManifestFields(m: Manifest, p: string): void {
  const bad = (field: string, v: unknown, want: string) => new Error(`${p}: ${field} is ${JSON.stringify(v)}; expected ${want} (delete the folder and re-run longctx data prepare)`);
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (m.tokenizer.file !== 'tokenizer.json') throw bad('tokenizer.file', m.tokenizer.file, '"tokenizer.json"');
  m.sources.forEach((s, i) => {
    const at = `sources[${i}]`;
    if (typeof s !== 'object' || s === null) throw bad(at, s, 'an object');
    if (typeof s.name !== 'string') throw bad(`${at}.name`, s.name, 'a string');
    if (!Array.isArray(s.shards)) throw bad(`${at}.shards`, s.shards, 'a list of shards');
    for (const k of ['nextDoc', 'documents', 'bytes'] as const) if (!count(s[k])) throw bad(`${at}.${k}`, s[k], 'a non-negative integer');
    s.shards.forEach((sh, j) => {
      const f = `${at}.shards[${j}]`;
      if (typeof sh !== 'object' || sh === null) throw bad(f, sh, 'an object');
      if (typeof sh.file !== 'string' || !SHARD_FILE.test(sh.file)) throw bad(`${f}.file`, sh.file, 'a shard file inside the folder, shards/NAME.train.bin or shards/NAME.val.bin');
      if (sh.split !== 'train' && sh.split !== 'val') throw bad(`${f}.split`, sh.split, '"train" or "val"');
      for (const k of ['documents', 'tokens', 'bytes', 'endDoc'] as const) if (!count(sh[k])) throw bad(`${f}.${k}`, sh[k], 'a non-negative integer');
      if (typeof sh.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sh.sha256)) throw bad(`${f}.sha256`, sh.sha256, 'a sha256 in hex');
    });
  });
}

function sumSplit(shards: ShardRecord[], split: 'train' | 'val'): SplitCounts {
  let documents = 0, tokens = 0;
  for (const s of shards) if (s.split === split) { documents += s.documents; tokens += s.tokens; }
  return { documents, tokens };
}

/**
 * Whether a folder without manifest.json holds only what a prepare killed before its first manifest
 * leaves (the tokenizer files, an empty shards/ or temp files of atomic writes): then it is ours to
 * continue, not a user's folder.
 */
function onlyPrepareLeftovers(out: string): boolean {
  const temp = (n: string): boolean => /\.tmp-\d+-[0-9a-z]+$/i.test(n);
  for (const e of fs.readdirSync(out, { withFileTypes: true })) {
    if (e.isFile() && (e.name === 'tokenizer.json' || e.name === 'tokenizer_config.json' || e.name === LOCK || temp(e.name))) continue;
    if (e.isDirectory() && e.name === 'shards' && fs.readdirSync(path.join(out, 'shards')).every(temp)) continue;
    return false;
  }
  return true;
}

/** Hash every document of a source (pass 1): the fingerprint, the document count and bytes. */
function fingerprintSource(spec: SourceSpec, skipBad: boolean): { fingerprint: string; documents: number; bytes: number; skipped: number; firstSkip?: string } {
  const h = createHash('sha256');
  let documents = 0, bytes = 0, skipped = 0;
  let firstSkip: string | undefined;
  h.update(`${spec.kind}\0${spec.spec}\0`);
  for (const d of readSource(spec, { skipBad, onSkip: (r) => { skipped++; firstSkip ??= r; } })) {
    h.update(`${d.id}\0${d.text.length}\0`);
    h.update(d.text);
    documents++;
    bytes += Buffer.byteLength(d.text);
  }
  h.update(`\0${skipped}`);
  return { fingerprint: h.digest('hex'), documents, bytes, skipped, ...(firstSkip ? { firstSkip } : {}) };
}

export function prepareData(opts: PrepareOptions): PrepareResult {
  const valFraction = opts.valFraction ?? 0.05;
  const seed = opts.seed ?? 0;
  const shardTokens = opts.shardTokens ?? 1 << 24;
  if (!(valFraction >= 0 && valFraction < 1)) throw new RangeError(`--val-fraction must be in [0, 1), got ${valFraction}`);
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`--seed must be a non-negative integer, got ${seed}`);
  if (!Number.isInteger(shardTokens) || shardTokens < 1) throw new RangeError(`shard size must be a positive integer, got ${shardTokens}`);
  if (opts.sources.length === 0) throw new Error('no sources given');
  const log = opts.log ?? (() => {});
  const out = opts.out;
  const tok: Tokenizer = loadTokenizer(opts.tokenizer);
  const bpt = bytesPerTokenFor(tok.vocabSize);

  // the output folder: new, empty, or one of ours
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) throw new Error(`${out}: exists and is not a folder`);
    if (!readManifest(out) && !onlyPrepareLeftovers(out)) throw new Error(`${out}: not empty and has no manifest.json; give an empty or new --out folder`);
  }
  // one writer: a second prepare into this folder would race on shards and the manifest
  lockFolder(out, (pid) => `another process (pid ${pid}) is preparing this data folder; wait for it to finish or stop it, then run again`);
  try {
    return prepareLocked(opts, out, tok, bpt, { valFraction, seed, shardTokens, log });
  } finally {
    unlockFolder(out);
  }
}

function prepareLocked(opts: PrepareOptions, out: string, tok: Tokenizer, bpt: 2 | 4, s: { valFraction: number; seed: number; shardTokens: number; log: (line: string) => void }): PrepareResult {
  const { valFraction, seed, shardTokens, log } = s;
  // read under the lock: a writer that finished meanwhile may have written it
  let old = readManifest(out);
  fs.mkdirSync(path.join(out, 'shards'), { recursive: true });

  const key = createHash('sha256').update(JSON.stringify({ tok: tok.hash(), valFraction, seed, shardTokens, v: SHARD_VERSION })).digest('hex');
  // nothing prepared earlier is replaced by surprise: other settings or fewer sources need --force
  if (old && !opts.force) {
    const tokens = old.totals ? old.totals.train.tokens + old.totals.val.tokens : 0;
    if (old.key !== key) throw new Error(`${out}: was prepared with another tokenizer or settings (${tokens.toLocaleString('en-US')} tokens); pass --force to rebuild it, or give a new --out folder`);
    const listed = new Set(opts.sources.map((sp) => sp.name));
    const dropped = old.sources.map((sr) => sr.name).filter((n) => !listed.has(n));
    if (dropped.length > 0) throw new Error(`${out}: holds source(s) ${dropped.join(', ')} that this run does not list; list them too, pass --force to drop them, or give a new --out folder`);
  }
  if (old && old.key !== key) {
    log(`${out}: tokenizer or settings changed since the last run; rebuilding all shards`);
    for (const s of old.sources) for (const sh of s.shards) fs.rmSync(path.join(out, sh.file), { force: true });
    old = null;
  }
  if (!old || !fs.existsSync(path.join(out, 'tokenizer.json'))) saveTokenizer(out, tok);

  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    status: 'partial',
    key,
    tokenizer: { file: 'tokenizer.json', sha256: tok.hash(), vocabSize: tok.vocabSize, bosId: tok.bosId, eosId: tok.eosId, kind: tok.kind },
    config: { valFraction, seed, shardTokens, bytesPerToken: bpt, shardVersion: SHARD_VERSION },
    sources: [],
    totals: { train: { documents: 0, tokens: 0 }, val: { documents: 0, tokens: 0 } },
    updated: new Date().toISOString(),
  };
  const save = (): void => {
    manifest.totals = {
      train: { documents: 0, tokens: 0 },
      val: { documents: 0, tokens: 0 },
    };
    for (const s of manifest.sources) {
      s.train = sumSplit(s.shards, 'train');
      s.val = sumSplit(s.shards, 'val');
      manifest.totals.train.documents += s.train.documents;
      manifest.totals.train.tokens += s.train.tokens;
      manifest.totals.val.documents += s.val.documents;
      manifest.totals.val.tokens += s.val.tokens;
    }
    manifest.updated = new Date().toISOString();
    writeFileAtomic(path.join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  };

  // pass 1: fingerprints (reading is cheap; tokenizing is the work we want to skip)
  let skippedRecords = 0;
  const plans = opts.sources.map((spec) => {
    const fp = fingerprintSource(spec, opts.skipBad === true);
    if (fp.skipped > 0) log(`${spec.name}: skipped ${fp.skipped} bad record(s); first: ${fp.firstSkip}`);
    skippedRecords += fp.skipped;
    const prev = old?.sources.find((s) => s.name === spec.name && s.spec === spec.spec && s.fingerprint === fp.fingerprint);
    // a shard counts as done when its bytes hash to what the manifest recorded: sizes alone kept a
    // shard with flipped bytes as "up to date"
    const shardsOk = prev !== undefined && prev.shards.every((sh) => {
      try {
        const file = path.join(out, sh.file);
        return fs.statSync(file).size === sh.bytes && createHash('sha256').update(fs.readFileSync(file)).digest('hex') === sh.sha256;
      } catch {
        return false;
      }
    });
    const rec: SourceRecord = prev && shardsOk ? structuredClone(prev) : {
      name: spec.name, spec: spec.spec, fingerprint: fp.fingerprint, done: false, nextDoc: 0,
      documents: fp.documents, bytes: fp.bytes, emptyDocuments: 0, skippedRecords: fp.skipped,
      train: { documents: 0, tokens: 0 }, val: { documents: 0, tokens: 0 }, shards: [],
    };
    return { spec, fp, rec };
  });
  const totalDocs = plans.reduce((a, p) => a + p.fp.documents, 0);
  if (totalDocs === 0) throw new Error(`the sources (${opts.sources.map((s) => s.spec).join(', ')}) contain no documents`);

  // drop shards of sources that are no longer listed or changed
  const keep = new Set(plans.flatMap((p) => p.rec.shards.map((s) => s.file)));
  for (const s of old?.sources ?? []) for (const sh of s.shards) if (!keep.has(sh.file)) fs.rmSync(path.join(out, sh.file), { force: true });
  // and stray files: shards written after the last manifest update, temp files of a killed run
  for (const f of fs.readdirSync(path.join(out, 'shards'))) {
    const rel = `shards/${f}`;
    if (!keep.has(rel) && /\.(train|val)\.bin(\.tmp-\d+-[0-9a-f]+)?$/.test(f)) fs.rmSync(path.join(out, rel), { force: true });
  }
  manifest.sources = plans.map((p) => p.rec);
  save();

  // pass 2: tokenize what is not done
  const reused: string[] = [];
  const built: string[] = [];
  let todoBytes = 0;
  for (const p of plans) if (!p.rec.done) todoBytes += p.fp.bytes;
  const bar = opts.progress === false || todoBytes === 0 ? null : new Progress('tokenize', todoBytes, { unit: 'bytes' });
  let tokensThisRun = 0;
  for (const { spec, rec } of plans) {
    if (rec.done) {
      reused.push(spec.name);
      log(`${spec.name}: up to date (${rec.train.tokens + rec.val.tokens} tokens in ${rec.shards.length} shard(s)); skipped`);
      continue;
    }
    if (rec.nextDoc > 0) log(`${spec.name}: resuming after document ${rec.nextDoc}`);
    built.push(spec.name);
    const buf = { train: [] as { source: string; id: string; tokens: Int32Array }[], val: [] as { source: string; id: string; tokens: Int32Array }[] };
    let buffered = 0;
    let shardNo = rec.shards.length === 0 ? 0 : Math.max(...rec.shards.map((s) => Number(/-(\d+)\.(?:train|val)\.bin$/.exec(s.file)?.[1] ?? -1))) + 1;
    let docIndex = 0;
    const flush = (): void => {
      for (const split of ['train', 'val'] as const) {
        if (buf[split].length === 0) continue;
        const file = `shards/${slug(spec.name)}-${String(shardNo).padStart(5, '0')}.${split}.bin`;
        const w = writeShard(path.join(out, file), buf[split], tok.vocabSize);
        rec.shards.push({ file, split, documents: w.documents, tokens: w.tokens, bytes: w.bytes, sha256: w.sha256, endDoc: docIndex });
        buf[split] = [];
      }
      shardNo++;
      buffered = 0;
      rec.nextDoc = docIndex;
      save();
    };
    for (const d of readSource(spec, { skipBad: opts.skipBad === true })) {
      if (docIndex < rec.nextDoc) {
        docIndex++;
        continue;
      }
      const ids = tok.encode(d.text);
      docIndex++;
      if (ids.length === 0) {
        rec.emptyDocuments++;
      } else {
        const split = isValidationDoc(spec.name, d.id, valFraction, seed) ? 'val' : 'train';
        buf[split].push({ source: spec.name, id: d.id, tokens: ids });
        buffered += ids.length;
        tokensThisRun += ids.length;
      }
      bar?.add(Buffer.byteLength(d.text), `${(tokensThisRun / 1e6).toFixed(2)}M tokens`);
      if (buffered >= shardTokens) flush();
    }
    flush();
    rec.done = true;
    save();
  }
  bar?.finish(`${(tokensThisRun / 1e6).toFixed(2)}M tokens`);
  if (manifest.totals.train.tokens === 0) {
    // A folder with nothing to train on is of no use, and its manifest would tie a re-run to these
    // sources: the manifest and shards go (the manifest first), leaving what a fresh run continues.
    fs.rmSync(path.join(out, 'manifest.json'), { force: true });
    for (const f of fs.readdirSync(path.join(out, 'shards'))) fs.rmSync(path.join(out, 'shards', f), { force: true });
    throw new Error(`${out}: no training tokens (every document was empty or held out), so nothing was kept; lower --val-fraction or add sources`);
  }
  manifest.status = 'complete';
  save();
  return { manifest, reused, built, skippedRecords };
}
