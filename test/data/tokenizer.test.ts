// The tokenizer on its own: round trips on random text and random bytes, the trained vocabulary's
// layout, loading and its errors, and the BPE merge order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Rng } from '../../src/util/rng.js';
import { loadTokenizer, saveTokenizer, tokenizerFromJSON } from '../../src/data/tokenizer/load.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { onigurumaToJs } from '../../src/data/tokenizer/regex.js';
import { TRICKY, llama2Converted, trained1k, withTempDir } from './fixtures.js';

// code points drawn from ranges that stress a tokenizer
const RANGES: [number, number][] = [
  [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0x00, 0x1f], [0x7f, 0x9f], [0xa0, 0x2ff], [0x300, 0x36f], // combining marks
  [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff], [0x2000, 0x206f], [0x2580, 0x2582], // "▁" and neighbours
  [0x3000, 0x303f], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xe0ff], [0xfe00, 0xfeff], [0xfff0, 0xfffd],
  [0x1f300, 0x1faff], [0x1f1e6, 0x1f1ff], [0x10000, 0x10ffff],
];
function randomString(rng: Rng, maxLen: number): string {
  const n = rng.nextInt(maxLen + 1);
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = rng.nextFloat();
    if (r < 0.15) { s += ' '.repeat(1 + rng.nextInt(3)); continue; }
    if (r < 0.2) { s += '\n'; continue; }
    const [lo, hi] = RANGES[rng.nextInt(RANGES.length)]!;
    let cp = lo + rng.nextInt(hi - lo + 1);
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
    s += String.fromCodePoint(cp);
  }
  return s;
}

const tokenizers = () => [
  ['trained byte-fallback', trained1k().tokenizer],
  ['llama2-converted', tokenizerFromJSON(JSON.stringify(llama2Converted(trained1k().json)))],
  ['trained byte-level', trained1k('byte-level', 'moby-dick', 600).tokenizer],
] as const;

test('decode(encode(s)) === s for random well-formed strings (emoji, CJK, combining marks, controls, NUL); bytes API for "▁"', () => {
  const rng = new Rng(7);
  const strings = [...TRICKY, '', '\u0000', '\u0000\u0000 \u0000', '\u2581', ' \u2581 ', '<s>', '</s> <unk>', '<0x41>'];
  for (let k = 0; k < 300; k++) strings.push(randomString(rng, 1 + (k % 60)));
  for (const [name, tok] of tokenizers()) {
    for (const s of strings) {
      // lossless for any text through the byte API
      assert.deepEqual(Buffer.from(tok.decodeBytes(tok.encodeBytes(Buffer.from(s)))), Buffer.from(s), `${name}: bytes round trip of ${JSON.stringify(s)}`);
      // encode() is Hugging Face-exact: a literal "▁" is the meta-space in byte-fallback tokenizers
      if (tok.kind === 'byte-fallback' && s.includes('\u2581')) {
        assert.equal(tok.decode(tok.encode(s)), s.replaceAll('\u2581', ' '));
        continue;
      }
      const ids = tok.encode(s);
      assert.equal(tok.decode(ids), s, `${name}: round trip of ${JSON.stringify(s)}`);
      for (const id of ids) assert.ok(id >= 0 && id < tok.vocabSize);
      // BOS/EOS are special: dropped by skipSpecial
      assert.equal(tok.decode(tok.encode(s, { bos: true, eos: true }), { skipSpecial: true }), s);
    }
  }
});

test('decodeBytes(encodeBytes(b)) === b for random bytes, invalid UTF-8 included', () => {
  const rng = new Rng(11);
  const cases: Uint8Array[] = [
    Uint8Array.of(0xff), Uint8Array.of(0xc3), Uint8Array.of(0xe2, 0x96), Uint8Array.of(0xed, 0xa0, 0x80), // lone surrogate as bytes
    Uint8Array.of(0xf4, 0x90, 0x80, 0x80), Uint8Array.of(0xc0, 0xaf), Uint8Array.of(0x20, 0xff, 0x20, 0x61),
    Uint8Array.of(0xff, 0x20, 0x61), Uint8Array.of(0x20, 0x20, 0xfe), Buffer.from('caf\u00e9 \u2581 ok'),
  ];
  for (let k = 0; k < 200; k++) {
    const n = rng.nextInt(40);
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = rng.nextFloat() < 0.5 ? 0x20 + rng.nextInt(0x5f) : rng.nextInt(256);
    cases.push(b);
  }
  for (const [name, tok] of tokenizers()) {
    for (const b of cases) {
      const got = tok.decodeBytes(tok.encodeBytes(b));
      assert.deepEqual(Buffer.from(got), Buffer.from(b), `${name}: bytes ${Buffer.from(b).toString('hex')}`);
    }
    // valid UTF-8 bytes encode like the text
    assert.deepEqual(tok.encodeBytes(Buffer.from('Call me Ishmael.')), tok.encode('Call me Ishmael.'));
  }
});

test('a lone surrogate is not Unicode text: it encodes as U+FFFD', () => {
  for (const [, tok] of tokenizers()) {
    assert.equal(tok.decode(tok.encode('a\ud800b')), 'a\ufffdb');
    assert.equal(tok.decode(tok.encode('\udfff')), '\ufffd');
  }
});

test('trained vocabulary layout: <unk>=0 <s>=1 </s>=2, <0x00>..<0xFF>=3..258, exact size, byte fallback for rare characters', () => {
  const r = trained1k();
  const t = r.tokenizer;
  assert.equal(t.vocabSize, 1024);
  assert.deepEqual([t.unkId, t.bosId, t.eosId], [0, 1, 2]);
  assert.equal(t.idToToken(0), '<unk>');
  assert.equal(t.idToToken(3), '<0x00>');
  assert.equal(t.idToToken(258), '<0xFF>');
  assert.equal(t.idToToken(259), '\u2581');
  assert.equal(r.merges + r.alphabet + 259, 1024);
  // a character never seen in training is spelled in bytes
  const ids = Array.from(t.encode('\u{1F600}'));
  assert.deepEqual(ids.slice(-4), [0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
  const j = JSON.parse(r.json);
  assert.equal(j.model.type, 'BPE');
  assert.equal(j.model.byte_fallback, true);
  assert.deepEqual(j.normalizer.normalizers.map((n: { type: string }) => n.type), ['Prepend', 'Replace']);
  assert.equal(j.pre_tokenizer, null);
  assert.deepEqual(j.decoder.decoders.map((n: { type: string }) => n.type), ['Replace', 'ByteFallback', 'Fuse', 'Strip']);
  // training is deterministic
  assert.equal(trainTokenizer(['the cat sat on the mat', 'the cat'], { vocabSize: 300 }).toJSON(), trainTokenizer(['the cat sat on the mat', 'the cat'], { vocabSize: 300 }).toJSON());
});

test('encoding applies merges lowest rank first, leftmost first (Hugging Face BPE order)', () => {
  // vocab a, b, c and merges in an order that makes greedy-left and rank order disagree
  const json = (merges: string[], extra: string[]) => JSON.stringify({
    added_tokens: [], normalizer: null, pre_tokenizer: null, decoder: null, post_processor: null,
    model: { type: 'BPE', unk_token: null, byte_fallback: false, vocab: Object.fromEntries(['a', 'b', 'c', ...extra].map((t, i) => [t, i])), merges },
  });
  const t1 = tokenizerFromJSON(json(['b c', 'a b'], ['bc', 'ab']));
  assert.deepEqual(Array.from(t1.encode('abc'), (i) => t1.idToToken(i)), ['a', 'bc']);
  const t2 = tokenizerFromJSON(json(['a b', 'b c'], ['ab', 'bc']));
  assert.deepEqual(Array.from(t2.encode('abc'), (i) => t2.idToToken(i)), ['ab', 'c']);
  const t3 = tokenizerFromJSON(json(['a a', 'aa aa'], ['aa', 'aaaa']));
  assert.deepEqual(Array.from(t3.encode('aaaaa'), (i) => t3.idToToken(i)), ['aaaa', 'a']);
  // long pieces take the heap path: same result as the short-piece path piecewise
  const long = 'abc'.repeat(200);
  assert.deepEqual(Array.from(t1.encode(long), (i) => t1.idToToken(i)).join('|'), Array(200).fill('a|bc').join('|'));
});

test('loadTokenizer reads a folder or a file, and saveTokenizer writes tokenizer.json + tokenizer_config.json', () => {
  withTempDir((dir) => {
    const t = trained1k().tokenizer;
    saveTokenizer(dir, t);
    const a = loadTokenizer(dir);
    const b = loadTokenizer(path.join(dir, 'tokenizer.json'));
    assert.equal(a.hash(), t.hash());
    assert.deepEqual(a.encode('Call me Ishmael.'), b.encode('Call me Ishmael.'));
    // tokenizer_config.json names BOS/EOS; it wins over the built-in guesses
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: { content: '</s>' }, eos_token: '<s>' }));
    const c = loadTokenizer(dir);
    assert.deepEqual([c.bosId, c.eosId], [2, 1]);
    // a run folder (config and tokenizer under model/) stands for its model, as --from does
    const run = path.join(dir, 'run');
    saveTokenizer(path.join(run, 'model'), t);
    assert.equal(loadTokenizer(run).hash(), t.hash());
  });
});

test('unsupported or broken tokenizer.json files give one-line errors naming the file and the component', () => {
  withTempDir((dir) => {
    const base = JSON.parse(trained1k().json);
    const write = (name: string, j: unknown): string => {
      const d = path.join(dir, name);
      mkdirSync(d);
      writeFileSync(path.join(d, 'tokenizer.json'), typeof j === 'string' ? j : JSON.stringify(j));
      return d;
    };
    const cases: [string, unknown, RegExp][] = [
      ['unigram', { ...base, model: { type: 'Unigram', vocab: [['a', 0]] } }, /unigram[/\\]tokenizer\.json: unsupported model type "Unigram"/],
      ['wordpiece', { ...base, model: { type: 'WordPiece', vocab: {} } }, /unsupported model type "WordPiece"/],
      ['bert', { ...base, normalizer: { type: 'BertNormalizer' } }, /bert[/\\]tokenizer\.json: unsupported normalizer "BertNormalizer"/],
      ['prec', { ...base, normalizer: { type: 'Sequence', normalizers: [{ type: 'Precompiled', precompiled_charsmap: '' }] } }, /unsupported normalizer "Precompiled"/],
      ['pre', { ...base, pre_tokenizer: { type: 'BertPreTokenizer' } }, /unsupported pre_tokenizer "BertPreTokenizer"/],
      ['dec', { ...base, decoder: { type: 'WordPiece' } }, /unsupported decoder "WordPiece"/],
      ['dropout', { ...base, model: { ...base.model, dropout: 0.1 } }, /unsupported BPE option dropout/],
      ['merge', { ...base, model: { ...base.model, merges: ['q z'] } }, /merge 0 .*not in model\.vocab/],
      ['regex', { ...base, pre_tokenizer: { type: 'Split', pattern: { Regex: '[[:alpha:]]+' }, behavior: 'Isolated' } }, /pre_tokenizer\.pattern: unsupported regular expression construct POSIX bracket/],
      ['json', '{"model": ', /json[/\\]tokenizer\.json: not valid JSON/],
      ['nomodel', { version: '1.0' }, /no "model" object/],
      // ids that name two tokens, and specials the post-processor adds that do not exist
      ['dupvocab', { ...base, model: { ...base.model, vocab: { ...base.model.vocab, zzz: 5 } } }, /dupvocab[/\\]tokenizer\.json: model\.vocab gives id 5 to both .* and "zzz"; every id must name one token/],
      ['dupadded', { ...base, added_tokens: [...base.added_tokens, { id: 7, content: '<x>', special: true }] }, /added_tokens\[\d+\] "<x>" takes id 7, which model\.vocab gives to/],
      ['twinadded', { ...base, added_tokens: [...base.added_tokens, { id: 5000, content: '<x>', special: true }, { id: 5000, content: '<y>', special: true }] }, /"<y>" takes id 5000, which added token "<x>" has already/],
      ['pp', { ...base, post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: {} } }, /pp[/\\]tokenizer\.json: post_processor adds the token "<bos>", which is neither in model\.vocab nor in added_tokens/],
    ];
    for (const [name, j, re] of cases) {
      const d = write(name, j);
      assert.throws(() => loadTokenizer(d), (e: Error) => {
        assert.match(e.message, re);
        assert.equal(e.message.split('\n').length, 1, e.message);
        return true;
      }, name);
    }
    assert.throws(() => loadTokenizer(path.join(dir, 'missing')), /missing: cannot read tokenizer \(ENOENT\)/);
    mkdirSync(path.join(dir, 'empty'));
    assert.throws(() => loadTokenizer(path.join(dir, 'empty')), /no tokenizer\.json in this folder/);
  });
});

test('Oniguruma patterns translate to JS: \\s is White_Space, (?i:) folds ASCII, possessive/atomic become plain', () => {
  assert.equal(onigurumaToJs("(?i:'s|'t)"), "(?:'[sS]|'[tT])");
  assert.equal(onigurumaToJs('\\s+(?!\\S)'), '\\p{White_Space}+(?!\\P{White_Space})');
  assert.equal(onigurumaToJs('a++(?>b)\\p{^L}'), 'a+(?:b)\\P{L}');
  assert.equal(onigurumaToJs('.\\x{1F600}'), '[^\\n]\\u{1F600}');
  const re = new RegExp(onigurumaToJs('\\s'), 'u');
  assert.ok(re.test('\u0085') && !re.test('\uFEFF'));
  assert.throws(() => onigurumaToJs('\\G'), /unsupported regular expression construct \\G/);
});

test('addsBos follows Hugging Face: the template adds BOS or not, add_bos_token overrides it; prompts start with BOS only then', async () => {
  const { Tokenizer: HfJs } = await import('@huggingface/tokenizers');
  const { bosTokens } = await import('../../src/data/tokenizer/pieces.js');
  const base = JSON.parse(trained1k().json) as Record<string, unknown>;
  const text = 'Call me Ishmael.';
  const pp = (single: unknown[]): unknown => ({ type: 'TemplateProcessing', single, pair: [], special_tokens: { '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] } } });
  const A = { Sequence: { id: 'A', type_id: 0 } };
  const cases: [string, Record<string, unknown>, Record<string, unknown> | undefined, boolean][] = [
    ['BOS template (Llama 2 / 3)', base, undefined, true],
    ['$A </s>', { ...base, post_processor: pp([A, { SpecialToken: { id: '</s>', type_id: 0 } }]) }, undefined, false],
    ['$A alone', { ...base, post_processor: pp([A]) }, undefined, false],
    ['no post-processor', { ...base, post_processor: null }, undefined, true],
    ['add_bos_token false over a BOS template', base, { add_bos_token: false }, false],
    ['add_bos_token true over $A', { ...base, post_processor: pp([A]) }, { add_bos_token: true }, true],
  ];
  for (const [what, json, config, adds] of cases) {
    const t = tokenizerFromJSON(JSON.stringify(json), 'tokenizer.json', config);
    assert.ok(t.bosId >= 0, what);
    assert.equal(t.addsBos, adds, what);
    assert.deepEqual([...bosTokens(t)], adds ? [t.bosId] : [], what);
    // where the post-processor decides (no config flag), it is what Hugging Face's encode does
    if (config === undefined && json.post_processor !== null) {
      const hf = new HfJs(json as never, {}).encode(text).ids;
      assert.equal(hf[0] === t.bosId, adds, `${what}: HF encode gives ${JSON.stringify(hf)}`);
    }
  }
  // a save keeps it (tokenizer_config.json's add_bos_token says what the template said)
  withTempDir((dir) => {
    const noBos = tokenizerFromJSON(JSON.stringify({ ...base, post_processor: pp([A]) }));
    saveTokenizer(dir, noBos);
    assert.equal(loadTokenizer(dir).addsBos, false);
    saveTokenizer(path.join(dir, 'b'), tokenizerFromJSON(JSON.stringify(base)));
    assert.equal(loadTokenizer(path.join(dir, 'b')).addsBos, true);
  });
  // the evaluation's sequences follow it too
  const { pplSequences } = await import('../../src/eval/probes/ppl.js');
  const docs = [{ id: 'd', tokens: Int32Array.from({ length: 100 }, (_, i) => 10 + i) }];
  assert.deepEqual([...pplSequences(docs, { bosId: 1, addsBos: true, eosId: 2 }, 16, 1, 0).sequences[0]!.tokens.subarray(0, 2)], [1, 10]);
  assert.deepEqual([...pplSequences(docs, { bosId: 1, addsBos: false, eosId: 2 }, 16, 1, 0).sequences[0]!.tokens.subarray(0, 2)], [10, 11]);
});
