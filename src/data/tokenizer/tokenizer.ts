// A Hugging Face tokenizer.json, read and run in TypeScript with the Rust `tokenizers` crate's
// semantics (the reference every Llama checkpoint ships with), for the BPE family:
//  - Llama 2 / SentencePiece byte-fallback BPE: normalizer Prepend("▁") + Replace(" " -> "▁"), no
//    pre-tokenizer, byte_fallback, decoder Replace / ByteFallback / Fuse / Strip;
//  - SentencePiece-style Metaspace pre-tokenizer (prepend_scheme always / first / never, split);
//  - Llama 3 / GPT-2 byte-level BPE: Split(regex) + ByteLevel pre-tokenizer, ignore_merges,
//    ByteLevel decoder.
// Anything else (WordPiece, Unigram, BERT normalizers, ...) is refused with a one-line error naming
// the file and the component.
//
// Round trip (tested on random strings and bytes), for the tokenizers we write and Llama-style ones
// (lossless normalizers: no NFKC / Lowercase / Strip; decoders Replace/ByteFallback/Fuse/Strip or
// ByteLevel):
//  - decodeBytes(encodeBytes(b)) equals b for ANY byte string b: invalid UTF-8 bytes become byte
//    tokens, and so does a literal "▁" (U+2581) in byte-fallback tokenizers;
//  - decode(encode(s)) === s for every well-formed string s, except that in byte-fallback
//    tokenizers encode() maps a literal "▁" to the meta-space token exactly as Hugging Face does
//    (parity comes first), which decodes as a space; use encodeBytes for such text.
// A JS string with a lone surrogate is not Unicode text: it is encoded as U+FFFD (what TextEncoder
// does), so it decodes to U+FFFD. Metaspace *decoders* drop every "▁" of the first token (Rust
// behaviour), so leading spaces do not round-trip through them.
//
// Speed: pieces are cached; byte-fallback text with no pre-tokenizer is one piece per document in
// Hugging Face's model, which we split before every "▁" that follows a non-"▁" character when the
// merges prove that no merge can cross such a boundary (checked at load), so results are identical.

import { createHash } from 'node:crypto';
import { BpeModel } from './bpe.js';
import {
  BYTE_TO_CHAR, CHAR_TO_BYTE, IdBuffer, concatBytes, parseByteToken, utf8, utf8Lossy, validUtf8SeqLen,
} from './bytes.js';
import { compileOniguruma, escapeRegExp } from './regex.js';
import { jsonErrorText } from '../../util/json-error.js';
import { GPT2_PATTERN } from './patterns.js';

export interface EncodeOptions {
  /** prepend bosId (default false) */
  bos?: boolean;
  /** append eosId (default false) */
  eos?: boolean;
  /**
   * Recognise special added tokens ("<s>", "<|begin_of_text|>", ...) written in the text, as Hugging
   * Face does by default (default false: text is always text, so a document containing "</s>" cannot
   * inject an end-of-sequence). Non-special added tokens are always recognised, as in Hugging Face.
   */
  splitSpecial?: boolean;
}

export interface DecodeOptions {
  /** drop special added tokens (BOS/EOS/...) before decoding (default false) */
  skipSpecial?: boolean;
}

/** The tokenizer interface the rest of longctx uses. */
/** The largest token id a tokenizer.json may use (real vocabularies stop near 2^18): ids size arrays. */
export const MAX_TOKEN_ID = 2 ** 24;

export interface Tokenizer {
  /** number of ids (max id + 1, added tokens included) */
  readonly vocabSize: number;
  readonly bosId: number; // -1 when the tokenizer has none
  /**
   * Whether encoding a text for the model puts BOS in front, as Hugging Face's tokenizer does:
   * tokenizer_config.json's add_bos_token, else the post-processor's template (a Llama 2 / 3
   * template adds it; `$A </s>` or `$A` do not), else (no post-processor) whether there is a BOS.
   * Prompts and evaluation sequences start with BOS only when this is true.
   */
  readonly addsBos: boolean;
  readonly eosId: number;
  readonly unkId: number;
  /** 'byte-fallback' (Llama 2 / SentencePiece style) or 'byte-level' (Llama 3 / GPT-2 style) */
  readonly kind: 'byte-fallback' | 'byte-level';
  encode(text: string, opts?: EncodeOptions): Int32Array;
  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string;
  /** Encode raw bytes; invalid UTF-8 bytes become byte tokens, so decodeBytes(encodeBytes(b)) == b. */
  encodeBytes(bytes: Uint8Array, opts?: EncodeOptions): Int32Array;
  decodeBytes(ids: ArrayLike<number>, opts?: DecodeOptions): Uint8Array;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** ids of special added tokens */
  readonly specialIds: ReadonlySet<number>;
  /** the Hugging Face tokenizer.json text */
  toJSON(): string;
  /** sha256 of toJSON() */
  hash(): string;
}

// ----- parsed components -----

type NormStep =
  | { t: 'prepend'; s: string }
  | { t: 'replace'; re: RegExp | null; from: string; to: string }
  | { t: 'nf'; form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD' }
  | { t: 'lower' }
  | { t: 'strip'; left: boolean; right: boolean };

type Behavior = 'removed' | 'isolated' | 'merged_with_previous' | 'merged_with_next' | 'contiguous';

type PreStep =
  | { t: 'split'; re: RegExp; behavior: Behavior; invert: boolean }
  | { t: 'metaspace'; rep: string; prepend: 'always' | 'first' | 'never'; split: boolean; re: RegExp }
  | { t: 'digits'; individual: boolean; re: RegExp }
  | { t: 'bytelevel'; prefixSpace: boolean; re: RegExp | null };

type DecStep =
  | { t: 'replace'; from: Uint8Array; to: Uint8Array }
  | { t: 'bytefallback' }
  | { t: 'fuse' }
  | { t: 'strip'; content: Uint8Array; start: number; stop: number }
  | { t: 'metaspace'; rep: Uint8Array; dropFirst: boolean }
  | { t: 'bytelevel' };

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
  singleWord: boolean;
  /** matched on the normalized text, as its normalized content (Hugging Face's `normalized`) */
  normalized: boolean;
  /** what is matched: content, or (normalized) content through the normalizer */
  match: string;
}

/** Added tokens to find in a text: one alternation, longest first, and the token of each match. */
interface AddedMatcher {
  re: RegExp;
  byMatch: Map<string, AddedToken>;
}

const WS_START = /^\p{White_Space}+/u;
const WS_END = /\p{White_Space}+$/u;

type Json = Record<string, unknown>;

function isObj(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Parse and run a tokenizer.json. Build with `tokenizerFromJSON` or `loadTokenizer`. */
/** The one-line error for a tokenizer.json component we do not implement, naming the file and the component. */
function unsupportedIn(where: string, component: string, type: unknown, hint = ''): never {
  throw new Error(`${where}: unsupported ${component} ${JSON.stringify(type)}${hint ? ` (${hint})` : ''}`);
}

/** The normalizer section of tokenizer.json as steps (null/absent: none). */
function parseNormalizer(node: unknown, where: string): NormStep[] {
  const out: NormStep[] = [];
  const addNorm = (n: unknown, path: string): void => {
    if (n === null || n === undefined) return;
    if (!isObj(n)) throw new Error(`${where}: ${path} must be an object`);
    switch (n.type) {
      case 'Sequence':
        if (!Array.isArray(n.normalizers)) throw new Error(`${where}: ${path}.normalizers must be an array`);
        n.normalizers.forEach((x: unknown, k: number) => addNorm(x, `${path}.normalizers[${k}]`));
        return;
      case 'Prepend':
        if (typeof n.prepend !== 'string') throw new Error(`${where}: ${path}.prepend must be a string`);
        out.push({ t: 'prepend', s: n.prepend });
        return;
      case 'Replace': {
        const { re, from } = patternOf(n.pattern, `${path}.pattern`, where);
        out.push({ t: 'replace', re, from, to: String(n.content ?? '') });
        return;
      }
      case 'NFC': case 'NFD': case 'NFKC': case 'NFKD':
        out.push({ t: 'nf', form: n.type });
        return;
      case 'Lowercase':
        out.push({ t: 'lower' });
        return;
      case 'Strip':
        out.push({ t: 'strip', left: n.strip_left !== false, right: n.strip_right !== false });
        return;
      default:
        unsupportedIn(where, 'normalizer', n.type, 'supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip');
    }
  };

  addNorm(node, 'normalizer');
  return out;
}

/** The pre_tokenizer section as steps; ByteLevel, when present, must come last. */
function parsePreTokenizer(node: unknown, where: string): PreStep[] {
  const out: PreStep[] = [];
  const addPre = (p: unknown, path: string): void => {
    if (p === null || p === undefined) return;
    if (!isObj(p)) throw new Error(`${where}: ${path} must be an object`);
    switch (p.type) {
      case 'Sequence':
        if (!Array.isArray(p.pretokenizers)) throw new Error(`${where}: ${path}.pretokenizers must be an array`);
        p.pretokenizers.forEach((x: unknown, k: number) => addPre(x, `${path}.pretokenizers[${k}]`));
        return;
      case 'Split': {
        const { re } = patternOf(p.pattern, `${path}.pattern`, where, true);
        const beh = String(p.behavior ?? 'Isolated').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
        if (!['removed', 'isolated', 'merged_with_previous', 'merged_with_next', 'contiguous'].includes(beh)) unsupportedIn(where, `${path}.behavior`, p.behavior);
        out.push({ t: 'split', re: re!, behavior: beh as Behavior, invert: p.invert === true });
        return;
      }
      case 'Metaspace': {
        const rep = typeof p.replacement === 'string' ? p.replacement : '\u2581';
        let scheme: 'always' | 'first' | 'never';
        if (typeof p.prepend_scheme === 'string') {
          if (!['always', 'first', 'never'].includes(p.prepend_scheme)) unsupportedIn(where, `${path}.prepend_scheme`, p.prepend_scheme);
          scheme = p.prepend_scheme as 'always' | 'first' | 'never';
        } else {
          scheme = p.add_prefix_space === false ? 'never' : 'always';
        }
        out.push({ t: 'metaspace', rep, prepend: scheme, split: p.split !== false, re: new RegExp(escapeRegExp(rep), 'gu') });
        return;
      }
      case 'Digits':
        out.push({ t: 'digits', individual: p.individual_digits === true, re: /\p{N}/gu });
        return;
      case 'ByteLevel':
        out.push({ t: 'bytelevel', prefixSpace: p.add_prefix_space === true, re: p.use_regex === false ? null : compileOniguruma(GPT2_PATTERN) });
        return;
      default:
        unsupportedIn(where, 'pre_tokenizer', p.type, 'supported: Sequence, Split, Metaspace, Digits, ByteLevel');
    }
  };
  addPre(node, 'pre_tokenizer');
  const bl = out.findIndex((st) => st.t === 'bytelevel');
  if (bl >= 0 && bl !== out.length - 1) unsupportedIn(where, 'pre_tokenizer layout', 'ByteLevel before other pre-tokenizers', 'ByteLevel must come last');
  return out;
}

/** The decoder section as steps; null when the file has none (decoding then joins the tokens' bytes). */
function parseDecoder(node: unknown, where: string): DecStep[] | null {
  if (node === null || node === undefined) return null;
  const out: DecStep[] = [];
  const addDec = (d: unknown, path: string): void => {
    if (d === null || d === undefined) return;
    if (!isObj(d)) throw new Error(`${where}: ${path} must be an object`);
    switch (d.type) {
      case 'Sequence':
        if (!Array.isArray(d.decoders)) throw new Error(`${where}: ${path}.decoders must be an array`);
        d.decoders.forEach((x: unknown, k: number) => addDec(x, `${path}.decoders[${k}]`));
        return;
      case 'Replace': {
        const pat = d.pattern;
        if (!isObj(pat) || typeof pat.String !== 'string') unsupportedIn(where, `${path}.pattern`, pat, 'decoder Replace supports String patterns');
        out.push({ t: 'replace', from: utf8((pat as Json).String as string), to: utf8(String(d.content ?? '')) });
        return;
      }
      case 'ByteFallback': out.push({ t: 'bytefallback' }); return;
      case 'Fuse': out.push({ t: 'fuse' }); return;
      case 'Strip':
        out.push({ t: 'strip', content: utf8(String(d.content ?? ' ')), start: Number(d.start ?? 0), stop: Number(d.stop ?? 0) });
        return;
      case 'Metaspace': {
        const rep = typeof d.replacement === 'string' ? d.replacement : '\u2581';
        const scheme = typeof d.prepend_scheme === 'string' ? d.prepend_scheme : d.add_prefix_space === false ? 'never' : 'always';
        out.push({ t: 'metaspace', rep: utf8(rep), dropFirst: scheme !== 'never' });
        return;
      }
      case 'ByteLevel': out.push({ t: 'bytelevel' }); return;
      default:
        unsupportedIn(where, 'decoder', d.type, 'supported: Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace, ByteLevel');
    }
  };
  addDec(node, 'decoder');
  return out;
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly addsBos: boolean;
  readonly eosId: number;
  readonly unkId: number;
  readonly kind: 'byte-fallback' | 'byte-level';
  readonly specialIds: ReadonlySet<number>;
  private readonly text: string;
  private hashHex: string | null = null;
  private readonly model: BpeModel;
  private readonly idToTok: (string | undefined)[];
  private readonly tokToId: Map<string, number>;
  private readonly norm: NormStep[];
  private readonly pre: PreStep[];
  private readonly byteLevel: boolean; // last pre-tokenizer step is ByteLevel
  private readonly dec: DecStep[] | null;
  private readonly added: AddedToken[];
  private readonly addedById = new Map<number, AddedToken>();
  // Added tokens as Hugging Face's AddedVocabulary finds them: those with normalized false on the
  // raw text first, then those with normalized true on each normalized section between them
  private readonly rawAll: AddedMatcher | null;
  private readonly rawNonSpecial: AddedMatcher | null; // special ones are text unless splitSpecial
  private readonly normAll: AddedMatcher | null;
  private readonly normNonSpecial: AddedMatcher | null;
  private readonly spaceSplit: boolean; // split pieces before "▁" that follows a non-"▁" (proved safe)
  private readonly meta = '\u2581';
  private readonly escapeMeta: boolean; // encodeBytes spells a literal "▁" in byte tokens

  constructor(jsonText: string, where = 'tokenizer.json', extra: { config?: Json } = {}) {
    this.text = jsonText;
    let j: unknown;
    try {
      j = JSON.parse(jsonText);
    } catch (e) {
      throw new Error(`${where}: not valid JSON (${jsonErrorText(e)})`);
    }
    if (!isObj(j)) throw new Error(`${where}: expected a JSON object (a Hugging Face tokenizer.json)`);
    const unsupported = (component: string, type: unknown, hint = ''): never => unsupportedIn(where, component, type, hint);

    // ----- model -----
    const m = j.model;
    if (!isObj(m)) throw new Error(`${where}: no "model" object; is this a Hugging Face tokenizer.json?`);
    const mtype = m.type ?? (m.merges !== undefined ? 'BPE' : undefined);
    if (mtype !== 'BPE') unsupported('model type', mtype ?? null, 'longctx reads BPE tokenizers: Llama 2 style byte-fallback and Llama 3 style byte-level');
    if (m.dropout !== undefined && m.dropout !== null && m.dropout !== 0) unsupported('BPE option dropout', m.dropout, 'dropout makes encoding random');
    if (m.continuing_subword_prefix) unsupported('BPE option continuing_subword_prefix', m.continuing_subword_prefix);
    if (m.end_of_word_suffix) unsupported('BPE option end_of_word_suffix', m.end_of_word_suffix);
    if (!isObj(m.vocab)) throw new Error(`${where}: model.vocab must be an object {token: id}`);
    const vocab = new Map<string, number>();
    const vocabTok = new Map<number, string>(); // id -> token, to refuse two tokens on one id (decoding would pick one)
    for (const [tok, id] of Object.entries(m.vocab)) {
      if (!Number.isInteger(id) || (id as number) < 0 || (id as number) > MAX_TOKEN_ID) throw new Error(`${where}: model.vocab[${JSON.stringify(tok)}] is not an integer id in [0, ${MAX_TOKEN_ID}]`);
      const other = vocabTok.get(id as number);
      if (other !== undefined) throw new Error(`${where}: model.vocab gives id ${String(id)} to both ${JSON.stringify(other)} and ${JSON.stringify(tok)}; every id must name one token`);
      vocab.set(tok, id as number);
      vocabTok.set(id as number, tok);
    }
    if (!Array.isArray(m.merges)) throw new Error(`${where}: model.merges must be an array`);
    // a "#version" line of old merges.txt-style lists is not a merge (the Rust crate skips it)
    const mergeList = (m.merges as unknown[]).filter((x) => !(typeof x === 'string' && x.startsWith('#version')));
    const merges: [string, string][] = mergeList.map((x: unknown, k: number) => {
      if (typeof x === 'string') {
        const sp = x.indexOf(' ');
        if (sp < 0 || x.indexOf(' ', sp + 1) >= 0) throw new Error(`${where}: merge ${k} ${JSON.stringify(x)} is not two tokens separated by one space`);
        return [x.slice(0, sp), x.slice(sp + 1)];
      }
      if (Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && typeof x[1] === 'string') return [x[0], x[1]];
      throw new Error(`${where}: merge ${k} must be "a b" or ["a", "b"]`);
    });
    const unkToken = typeof m.unk_token === 'string' ? m.unk_token : null;
    this.model = new BpeModel({
      vocab, merges, unkToken,
      byteFallback: m.byte_fallback === true,
      fuseUnk: m.fuse_unk === true,
      ignoreMerges: m.ignore_merges === true,
    }, where);

    // ----- added tokens -----
    this.tokToId = new Map(vocab);
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.added = [];
    const at = j.added_tokens ?? [];
    if (!Array.isArray(at)) throw new Error(`${where}: added_tokens must be an array`);
    for (const [k, a] of at.entries()) {
      if (!isObj(a) || !Number.isInteger(a.id) || (a.id as number) < 0 || (a.id as number) > MAX_TOKEN_ID || typeof a.content !== 'string' || a.content === '') throw new Error(`${where}: added_tokens[${k}] needs an integer id in [0, ${MAX_TOKEN_ID}] and a non-empty content`);
      // an added token may repeat its own vocab entry (Llama files list <s> in both), not take another's id
      const inVocab = vocabTok.get(a.id as number);
      if (inVocab !== undefined && inVocab !== a.content) throw new Error(`${where}: added_tokens[${k}] ${JSON.stringify(a.content)} takes id ${String(a.id)}, which model.vocab gives to ${JSON.stringify(inVocab)}`);
      const twin = this.addedById.get(a.id as number);
      if (twin) throw new Error(`${where}: added_tokens[${k}] ${JSON.stringify(a.content)} takes id ${String(a.id)}, which added token ${JSON.stringify(twin.content)} has already`);
      const tok: AddedToken = {
        id: a.id as number, content: a.content, special: a.special === true,
        lstrip: a.lstrip === true, rstrip: a.rstrip === true, singleWord: a.single_word === true,
        // absent: as the Rust crate's AddedToken::from(content, special), normalized = !special
        normalized: typeof a.normalized === 'boolean' ? a.normalized : a.special !== true, match: a.content,
      };
      this.added.push(tok);
      this.addedById.set(tok.id, tok);
      this.tokToId.set(tok.content, tok.id);
      if (tok.id > maxId) maxId = tok.id;
    }
    this.vocabSize = maxId + 1;
    this.idToTok = new Array<string | undefined>(this.vocabSize);
    for (const [t, id] of vocab) this.idToTok[id] = t;
    for (const a of this.added) this.idToTok[a.id] = a.content;
    this.specialIds = new Set(this.added.filter((a) => a.special).map((a) => a.id));
    // ----- normalizer, pre-tokenizer, decoder -----
    this.norm = parseNormalizer(j.normalizer, where);
    for (const a of this.added) if (a.normalized) a.match = this.normalize(a.content, true);
    const matcher = (list: AddedToken[]): AddedMatcher | null => {
      const usable = list.filter((a) => a.match.length > 0);
      if (usable.length === 0) return null;
      const byMatch = new Map<string, AddedToken>();
      for (const a of usable) if (!byMatch.has(a.match)) byMatch.set(a.match, a);
      const re = new RegExp([...byMatch.keys()].sort((x, y) => y.length - x.length).map(escapeRegExp).join('|'), 'gu');
      return { re, byMatch };
    };
    this.rawAll = matcher(this.added.filter((a) => !a.normalized));
    this.rawNonSpecial = matcher(this.added.filter((a) => !a.normalized && !a.special));
    this.normAll = matcher(this.added.filter((a) => a.normalized));
    this.normNonSpecial = matcher(this.added.filter((a) => a.normalized && !a.special));
    this.pre = parsePreTokenizer(j.pre_tokenizer, where);
    this.byteLevel = this.pre.some((st) => st.t === 'bytelevel');
    this.kind = this.byteLevel ? 'byte-level' : 'byte-fallback';

    this.dec = parseDecoder(j.decoder, where);

    // ----- special ids -----
    this.unkId = this.model.unkId;
    const cfg = extra.config ?? {};
    const cfgTok = (k: string): string | undefined => {
      const v = cfg[k];
      if (typeof v === 'string') return v;
      if (isObj(v) && typeof v.content === 'string') return v.content;
      return undefined;
    };
    const tmpl = templateSpecials(j.post_processor);
    for (const t of [tmpl.bos, tmpl.eos]) {
      if (t !== undefined && !this.tokToId.has(t)) throw new Error(`${where}: post_processor adds the token ${JSON.stringify(t)}, which is neither in model.vocab nor in added_tokens`);
    }
    const pick = (fromCfg: string | undefined, fromTmpl: string | undefined, names: string[]): number => {
      for (const t of [fromCfg, fromTmpl, ...names]) {
        if (t === undefined) continue;
        const id = this.tokToId.get(t);
        if (id !== undefined) return id;
      }
      return -1;
    };
    this.bosId = pick(cfgTok('bos_token'), tmpl.bos, ['<s>', '<|begin_of_text|>', '<|startoftext|>', '<bos>']);
    this.eosId = pick(cfgTok('eos_token'), tmpl.eos, ['</s>', '<|end_of_text|>', '<|endoftext|>', '<eos>']);
    // transformers' Llama/Gemma fast tokenizers rebuild the template from add_bos_token, so it wins
    const template = isObj(j.post_processor) ? tmpl.bos !== undefined : null;
    this.addsBos = this.bosId >= 0 && (typeof cfg.add_bos_token === 'boolean' ? cfg.add_bos_token : template ?? true);

    // ----- is splitting before "▁" exact? -----
    this.spaceSplit = !this.byteLevel && this.computeSpaceSplit(vocab, merges);
    this.escapeMeta = !this.byteLevel && this.dec !== null && this.dec.some((d) => d.t === 'bytefallback')
      && (this.norm.some((n) => n.t === 'replace' && n.to.includes(this.meta)) || this.pre.some((p) => p.t === 'metaspace'));
  }

  private computeSpaceSplit(vocab: Map<string, number>, merges: [string, string][]): boolean {
    const M = this.meta;
    if (!vocab.has(M)) return false;
    // (Metaspace with split=false or no pre-tokenizer: pieces can be whole documents)
    for (const [a, b] of merges) if (b.startsWith(M) && !a.endsWith(M)) return false;
    if (this.model.ignoreMerges) for (const t of vocab.keys()) if (/[^\u2581]\u2581/u.test(t)) return false;
    return true;
  }

  // ---------------------------------------------------------------- encode

  encode(text: string, opts: EncodeOptions = {}): Int32Array {
    const out = new IdBuffer(Math.max(16, text.length >> 2));
    if (opts.bos) out.push(this.requireId(this.bosId, 'BOS'));
    this.encodeWithAdded(text, out, opts.splitSpecial === true, true);
    if (opts.eos) out.push(this.requireId(this.eosId, 'EOS'));
    return out.result();
  }

  encodeBytes(bytes: Uint8Array, opts: EncodeOptions = {}): Int32Array {
    const out = new IdBuffer(Math.max(16, bytes.length >> 2));
    if (opts.bos) out.push(this.requireId(this.bosId, 'BOS'));
    let i = 0;
    let first = true;
    const n = bytes.length;
    while (i < n) {
      // a maximal valid run (a literal "▁" counts as invalid for byte-fallback tokenizers: the
      // decoder would turn its token into a space, so it is spelled in byte tokens instead)
      let j = i;
      while (j < n) {
        const k = validUtf8SeqLen(bytes, j, n);
        if (k === 0) break;
        if (k === 3 && this.escapeMeta && bytes[j] === 0xe2 && bytes[j + 1] === 0x96 && bytes[j + 2] === 0x81) break;
        j += k;
      }
      if (j > i) {
        this.encodeWithAdded(utf8Lossy(bytes.subarray(i, j)), out, opts.splitSpecial === true, first);
        first = false;
        i = j;
      }
      if (i < n) {
        const k = this.escapeMeta && bytes[i] === 0xe2 && bytes[i + 1] === 0x96 && bytes[i + 2] === 0x81 ? 3 : 1;
        for (let q = 0; q < k; q++) out.push(this.rawByteId(bytes[i + q]!));
        first = false;
        i += k;
      }
    }
    if (opts.eos) out.push(this.requireId(this.eosId, 'EOS'));
    return out.result();
  }

  private requireId(id: number, what: string): number {
    if (id < 0) throw new Error(`this tokenizer has no ${what} token`);
    return id;
  }

  /** Token id for one raw byte (invalid UTF-8 in encodeBytes). */
  private rawByteId(b: number): number {
    const name = this.byteLevel ? BYTE_TO_CHAR[b]! : `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
    const id = this.tokToId.get(name);
    if (id !== undefined) return id;
    if (this.unkId >= 0) return this.unkId;
    throw new Error(`cannot encode byte 0x${b.toString(16)}: no byte token and no <unk>`);
  }

  /**
   * `first`: the text starts the input. A continuation (encodeBytes after an invalid byte) gets no
   * prefix ("▁" / " ") so that decoding restores the bytes exactly.
   */
  private encodeWithAdded(text: string, out: IdBuffer, splitSpecial: boolean, first: boolean): void {
    const raw = splitSpecial ? this.rawAll : this.rawNonSpecial;
    const norm = splitSpecial ? this.normAll : this.normNonSpecial;
    for (const sec of splitOnAdded(text, raw)) {
      if (sec.id !== undefined) {
        out.push(sec.id);
        continue;
      }
      // each section between raw-matched tokens is normalized on its own, as in Hugging Face
      const normalized = this.normalize(sec.text!, first);
      for (const part of splitOnAdded(normalized, norm)) {
        if (part.id !== undefined) out.push(part.id);
        else this.encodeNormalized(part.text!, out, first && sec.start === 0 && part.start === 0, first);
      }
    }
  }

  /** The normalizer's steps; `prefix`: may Prepend add its prefix (not to a continuation). */
  private normalize(text: string, prefix: boolean): string {
    let s = text;
    if (s.length === 0) return s;
    for (const n of this.norm) {
      switch (n.t) {
        case 'prepend': if (prefix && s.length > 0) s = n.s + s; break;
        case 'replace': s = n.re ? s.replace(n.re, () => n.to) : s.replaceAll(n.from, n.to); break;
        case 'nf': s = s.normalize(n.form); break;
        case 'lower': s = lowercaseEachChar(s); break;
        case 'strip':
          if (n.left) s = s.replace(WS_START, '');
          if (n.right) s = s.replace(WS_END, '');
          break;
      }
    }
    return s;
  }

  /** pre-tokenizer -> model, for normalized text with no added tokens in it. */
  private encodeNormalized(s: string, out: IdBuffer, atStart: boolean, prefix: boolean): void {
    if (s.length === 0) return;
    const emitModel = (piece: string): void => {
      if (this.spaceSplit) this.emitSpaceSplit(piece, out);
      else this.model.encodePiece(piece, out, this.byteLevel);
    };
    this.preTokenize(s, 0, atStart, prefix, emitModel);
  }

  /** Split before each "▁" that follows a non-"▁" character (exact: see computeSpaceSplit). */
  private emitSpaceSplit(p: string, out: IdBuffer): void {
    let start = 0;
    const n = p.length;
    for (let i = 1; i < n; i++) {
      if (p.charCodeAt(i) === 0x2581 && p.charCodeAt(i - 1) !== 0x2581) {
        this.model.encodePiece(p.slice(start, i), out, false);
        start = i;
      }
    }
    this.model.encodePiece(start === 0 ? p : p.slice(start), out, false);
  }

  /** `prefix`: may this section get the pre-tokenizer's prefix ("▁" / " "; see encodeWithAdded). */
  private preTokenize(s: string, step: number, atStart: boolean, prefix: boolean, emit: (piece: string) => void): void {
    if (step >= this.pre.length) {
      emit(s);
      return;
    }
    const p = this.pre[step]!;
    const next = (piece: string, st: boolean): void => {
      if (piece.length > 0) this.preTokenize(piece, step + 1, st, prefix, emit);
    };
    switch (p.t) {
      case 'split':
        splitBy(s, p.re, p.behavior, p.invert, atStart, next);
        return;
      case 'digits':
        splitBy(s, p.re, p.individual ? 'isolated' : 'contiguous', false, atStart, next);
        return;
      case 'metaspace': {
        let t = s.replaceAll(' ', p.rep);
        if (prefix && !t.startsWith(p.rep) && (p.prepend === 'always' || (p.prepend === 'first' && atStart))) t = p.rep + t;
        if (!p.split) {
          next(t, atStart);
          return;
        }
        splitBy(t, p.re, 'merged_with_next', false, atStart, next);
        return;
      }
      case 'bytelevel': {
        let t = s;
        if (prefix && p.prefixSpace && !t.startsWith(' ')) t = ' ' + t;
        if (p.re === null) next(t, atStart);
        else splitBy(t, p.re, 'isolated', false, atStart, next);
        return;
      }
    }
  }

  // ---------------------------------------------------------------- decode

  /**
   * The decoder chain as the Rust crate runs it on strings: a run of byte tokens becomes one token;
   * ByteLevel and Fuse leave one token; Replace, Strip and Metaspace apply to every token. (One
   * departure: an invalid run decodes with one U+FFFD per maximal invalid sequence, as a stream
   * does, where Rust gives one per byte.)
   */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    return utf8Lossy(this.runDecoder(ids, opts, true));
  }

  /**
   * The decoder chain of tokenizer.json run on bytes rather than strings, so byte tokens of invalid
   * UTF-8 come back exactly (and a byte token is never touched by a later Replace). Ids outside the
   * vocabulary are dropped (as Hugging Face does).
   */
  decodeBytes(ids: ArrayLike<number>, opts: DecodeOptions = {}): Uint8Array {
    return this.runDecoder(ids, opts, false);
  }

  /** `asText`: decode's string semantics; else decodeBytes' lossless bytes. */
  private runDecoder(ids: ArrayLike<number>, opts: DecodeOptions, asText: boolean): Uint8Array {
    const toks: string[] = [];
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      const t = this.idToTok[id];
      if (t === undefined) continue;
      if (opts.skipSpecial && this.specialIds.has(id)) continue;
      toks.push(t);
    }
    if (this.dec === null) return utf8(toks.join(' '));
    let parts: Uint8Array[] = toks.map((t) => utf8(t));
    // which parts are still token text (ByteFallback / ByteLevel look at token text)
    let isText: boolean[] = parts.map(() => true);
    for (const d of this.dec) {
      switch (d.t) {
        case 'replace':
          parts = parts.map((b, k) => (asText || isText[k] ? replaceBytes(b, d.from, d.to) : b));
          break;
        case 'bytefallback': {
          const bytesOf = parts.map((b, k) => (isText[k] && b.length === 6 ? parseByteToken(utf8Lossy(b)) : -1));
          const nextParts: Uint8Array[] = [];
          const nextText: boolean[] = [];
          for (let k = 0; k < parts.length;) {
            if (bytesOf[k]! < 0) {
              nextParts.push(parts[k]!);
              nextText.push(isText[k]!);
              k++;
              continue;
            }
            let e = k;
            while (e < parts.length && bytesOf[e]! >= 0) e++;
            const run = Uint8Array.from(bytesOf.slice(k, e));
            if (!asText) {
              for (const v of run) { nextParts.push(Uint8Array.of(v)); nextText.push(false); }
            } else {
              // one token, as in Rust, so a later Metaspace or Replace sees a "▁" spelled in bytes
              // (an invalid run: Rust gives one U+FFFD per byte; we decode it as the server streams
              // it, one per maximal invalid sequence, so served text and decode agree)
              nextParts.push(run);
              nextText.push(false);
            }
            k = e;
          }
          parts = nextParts;
          isText = nextText;
          break;
        }
        case 'fuse':
          parts = [concatBytes(parts)];
          isText = [false];
          break;
        case 'strip':
          parts = parts.map((b) => stripBytes(b, d.content, d.start, d.stop));
          break;
        case 'metaspace':
          parts = parts.map((b, k) => (k === 0 && d.dropFirst ? replaceBytes(b, d.rep, new Uint8Array(0)) : replaceBytes(b, d.rep, utf8(' '))));
          break;
        case 'bytelevel':
          parts = parts.map((b, k) => {
            if (!isText[k]) return b;
            isText[k] = false;
            const s = utf8Lossy(b);
            const out = new Uint8Array(s.length);
            for (let i = 0; i < s.length; i++) {
              const c = s.charCodeAt(i);
              const v = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c]! : -1;
              if (v < 0) return b; // not a byte-level token (e.g. an added token): its own bytes
              out[i] = v;
            }
            return out;
          });
          // the Rust decoder gives back one string (a later Strip sees the whole text)
          if (asText) {
            parts = [utf8(utf8Lossy(concatBytes(parts)))];
            isText = [false];
          }
          break;
      }
    }
    return concatBytes(parts);
  }

  // ---------------------------------------------------------------- vocabulary

  tokenToId(token: string): number | undefined {
    return this.tokToId.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.idToTok[id];
  }

  toJSON(): string {
    return this.text;
  }

  hash(): string {
    if (this.hashHex === null) this.hashHex = createHash('sha256').update(this.text).digest('hex');
    return this.hashHex;
  }
}

/**
 * `text` cut around the added tokens `m` finds in it (leftmost, longest first), as sections of text
 * and token ids with their offsets; lstrip / rstrip eat the whitespace beside a token, and a
 * single_word token inside a word is text.
 */
function splitOnAdded(text: string, m: AddedMatcher | null): { text?: string; id?: number; start: number }[] {
  if (m === null) return text ? [{ text, start: 0 }] : [];
  const re = m.re;
  re.lastIndex = 0;
  let prev = 0;
  let pendingRstrip = false;
  let hit: RegExpExecArray | null;
  const sections: { text?: string; id?: number; start: number }[] = [];
  while ((hit = re.exec(text)) !== null) {
    const tok = m.byMatch.get(hit[0])!;
    const s = hit.index;
    const e = s + hit[0].length;
    if (tok.singleWord && (isWordChar(text, s - 1) || isWordChar(text, e))) continue;
    let gap = text.slice(prev, s);
    if (pendingRstrip) gap = gap.replace(WS_START, '');
    if (tok.lstrip) gap = gap.replace(WS_END, '');
    if (gap) sections.push({ text: gap, start: prev });
    sections.push({ id: tok.id, start: s });
    pendingRstrip = tok.rstrip;
    prev = e;
  }
  let tail = text.slice(prev);
  if (pendingRstrip) tail = tail.replace(WS_START, '');
  if (tail) sections.push({ text: tail, start: prev });
  return sections;
}

/** The Rust crate lowercases character by character (char::to_lowercase): no final-sigma rule. */
function lowercaseEachChar(s: string): string {
  let out = '';
  for (const ch of s) out += ch.toLowerCase();
  return out;
}

/**
 * Is the character that ends at index i (i < 0: none) or starts at index i a word character, as
 * the Rust regex crate's \w (Alphabetic, M, Nd, Pc, Join_Control) on whole characters?
 */
function isWordChar(s: string, i: number): boolean {
  if (i < 0 || i >= s.length) return false;
  let cp = s.codePointAt(i)!;
  // a low surrogate: the character is the pair that ends here (looking back) or a stray one
  if (cp >= 0xdc00 && cp <= 0xdfff && i > 0) {
    const hi = s.charCodeAt(i - 1);
    if (hi >= 0xd800 && hi <= 0xdbff) cp = s.codePointAt(i - 1)!;
  }
  return /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u.test(String.fromCodePoint(cp));
}

function patternOf(p: unknown, path: string, where: string, forSplit = false): { re: RegExp | null; from: string } {
  if (!isObj(p)) throw new Error(`${where}: ${path} must be {"String": ...} or {"Regex": ...}`);
  if (typeof p.String === 'string') {
    return { re: forSplit ? new RegExp(escapeRegExp(p.String), 'gu') : null, from: p.String };
  }
  if (typeof p.Regex === 'string') {
    try {
      return { re: compileOniguruma(p.Regex), from: '' };
    } catch (e) {
      throw new Error(`${where}: ${path}: ${(e as Error).message}`);
    }
  }
  throw new Error(`${where}: ${path} must be {"String": ...} or {"Regex": ...}`);
}

/** BOS/EOS named by a TemplateProcessing post-processor ("single": [<s>, $A] -> bos "<s>"). */
function templateSpecials(pp: unknown): { bos?: string; eos?: string } {
  if (!isObj(pp)) return {};
  if (pp.type === 'Sequence' && Array.isArray(pp.processors)) {
    for (const q of pp.processors) {
      const r = templateSpecials(q);
      if (r.bos || r.eos) return r;
    }
    return {};
  }
  if (pp.type !== 'TemplateProcessing' || !Array.isArray(pp.single)) return {};
  const out: { bos?: string; eos?: string } = {};
  let seenA = false;
  for (const item of pp.single) {
    if (!isObj(item)) continue;
    if (isObj(item.Sequence)) { seenA = true; continue; }
    if (isObj(item.SpecialToken) && typeof item.SpecialToken.id === 'string') {
      if (!seenA && out.bos === undefined) out.bos = item.SpecialToken.id;
      if (seenA && out.eos === undefined) out.eos = item.SpecialToken.id;
    }
  }
  return out;
}

/**
 * Split `s` around the matches of `re` with a Hugging Face SplitDelimiterBehavior (Rust semantics,
 * empty matches included), emitting non-empty pieces; `atStart` is passed for the piece at offset 0.
 */
function splitBy(s: string, re: RegExp, behavior: Behavior, invert: boolean, atStart: boolean, emit: (piece: string, atStart: boolean) => void): void {
  re.lastIndex = 0;
  if (behavior === 'isolated') {
    // fast path: every gap and every match is its own piece
    let prev = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(s)) !== null) {
      const st = m.index;
      const len = m[0].length;
      if (st > prev) emit(s.slice(prev, st), atStart && prev === 0);
      if (len > 0) emit(m[0], atStart && st === 0);
      prev = st + len;
      if (len === 0) re.lastIndex = st + (s.codePointAt(st)! > 0xffff ? 2 : 1);
      if (re.lastIndex > s.length) break;
    }
    if (prev < s.length) emit(prev === 0 ? s : s.slice(prev), atStart && prev === 0);
    return;
  }
  // segments: [start, end, isMatch]
  const seg: [number, number, boolean][] = [];
  let prev = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const st = m.index;
    const len = m[0].length;
    if (st > prev) seg.push([prev, st, false]);
    seg.push([st, st + len, true]);
    prev = st + len;
    if (len === 0) re.lastIndex = st + (s.codePointAt(st)! > 0xffff ? 2 : 1);
    if (re.lastIndex > s.length) break;
  }
  if (prev < s.length) seg.push([prev, s.length, false]);
  if (invert) for (const g of seg) g[2] = !g[2];
  let pieces: [number, number][] = [];
  switch (behavior) {
    case 'removed':
      pieces = seg.filter((g) => !g[2]).map((g) => [g[0], g[1]]);
      break;
    case 'merged_with_previous': {
      let pm = false;
      for (const [a, b, isM] of seg) {
        const last = pieces[pieces.length - 1];
        if (isM && !pm && last) last[1] = b;
        else pieces.push([a, b]);
        pm = isM;
      }
      break;
    }
    case 'merged_with_next': {
      let nm = false;
      const rev: [number, number][] = [];
      for (let k = seg.length - 1; k >= 0; k--) {
        const [a, b, isM] = seg[k]!;
        const last = rev[rev.length - 1];
        if (isM && !nm && last) last[0] = a;
        else rev.push([a, b]);
        nm = isM;
      }
      pieces = rev.reverse();
      break;
    }
    case 'contiguous': {
      let pm = false;
      for (const [a, b, isM] of seg) {
        const last = pieces[pieces.length - 1];
        if (isM === pm && last) last[1] = b;
        else pieces.push([a, b]);
        pm = isM;
      }
      break;
    }
    default:
      throw new Error(`unknown split behavior ${String(behavior)}`);
  }
  for (const [a, b] of pieces) if (b > a) emit(s.slice(a, b), atStart && a === 0);
}

function replaceBytes(b: Uint8Array, from: Uint8Array, to: Uint8Array): Uint8Array {
  if (from.length === 0 || b.length < from.length) return b;
  const f0 = from[0]!;
  let found = -1;
  for (let i = 0; i + from.length <= b.length; i++) {
    if (b[i] === f0 && matchAt(b, i, from)) { found = i; break; }
  }
  if (found < 0) return b;
  const chunks: Uint8Array[] = [];
  let prev = 0;
  for (let i = found; i + from.length <= b.length; ) {
    if (b[i] === f0 && matchAt(b, i, from)) {
      chunks.push(b.subarray(prev, i), to);
      i += from.length;
      prev = i;
    } else {
      i++;
    }
  }
  chunks.push(b.subarray(prev));
  return concatBytes(chunks);
}

function matchAt(b: Uint8Array, i: number, pat: Uint8Array): boolean {
  for (let k = 0; k < pat.length; k++) if (b[i + k] !== pat[k]) return false;
  return true;
}

function stripBytes(b: Uint8Array, c: Uint8Array, start: number, stop: number): Uint8Array {
  let s = 0;
  for (let k = 0; k < start && s + c.length <= b.length && matchAt(b, s, c); k++) s += c.length;
  let e = b.length;
  for (let k = 0; k < stop && e - c.length >= s && matchAt(b, e - c.length, c); k++) e -= c.length;
  return s === 0 && e === b.length ? b : b.subarray(s, e);
}
