// `longctx tokenizer train|encode|decode|bench`: byte-fallback BPE training into a Hugging Face
// tokenizer.json, and quick looks at what a tokenizer does.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { parseSources, readSources } from '../data/sources.js';
import { trainBpe } from '../data/tokenizer/train.js';
import { saveTokenizer } from '../data/tokenizer/load.js';
import { Progress } from '../util/progress.js';
import { checkFolderPath, intArg, floatArg } from './args.js';
import { tokenizerFromFile } from '../io/gguf-llama.js';

interface TrainOptions { sources: string; vocab: number; out: string; kind: string; coverage: number; skipBad: boolean; json: boolean; quiet: boolean }
interface EncodeOptions { tokenizer: string; file?: string; bos: boolean; eos: boolean; json: boolean }
interface BenchOptions { tokenizer: string; sources: string; repeat: number; json: boolean; peer: boolean }

export function registerTokenizer(program: Command): void {
  const tok = program.command('tokenizer').description('train and inspect BPE tokenizers (Hugging Face tokenizer.json)');

  tok
    .command('train')
    .description('train a byte-fallback BPE (Llama 2 style) on text sources and write tokenizer.json')
    .requiredOption('--sources <list>', 'comma-separated: moby-dick, sotu, code, file:PATH, dir:PATH[:GLOB], jsonl:PATH[:FIELD]')
    .requiredOption('--vocab <n>', 'vocabulary size, special and byte tokens included', intArg('--vocab', 300))
    .requiredOption('--out <dir>', 'output folder (tokenizer.json + tokenizer_config.json; other files are left alone)')
    .option('--kind <kind>', 'byte-fallback (Llama 2 style) or byte-level (Llama 3 style)', 'byte-fallback')
    .option('--coverage <f>', 'share of characters the alphabet covers; the rest use byte tokens', floatArg('--coverage', 0), 0.9995)
    .option('--skip-bad', 'skip unreadable or invalid-UTF-8 files and bad JSONL lines (and report how many)', false)
    .option('--json', 'print a JSON summary', false)
    .option('--quiet', 'no progress bar', false)
    .action((o: TrainOptions) => {
      if (o.kind !== 'byte-fallback' && o.kind !== 'byte-level') throw new Error(`--kind must be byte-fallback or byte-level, got "${o.kind}"`);
      if (o.coverage > 1) throw new Error(`--coverage must be in [0, 1], got ${o.coverage}`);
      const specs = parseSources(o.sources);
      const t0 = Date.now();
      let skipped = 0;
      let firstSkip = '';
      let docs = 0;
      let bytes = 0;
      const texts = function* (): Generator<string> {
        for (const d of readSources(specs, { skipBad: o.skipBad, onSkip: (r) => { if (!skipped++) firstSkip = r; } })) {
          docs++;
          bytes += Buffer.byteLength(d.text);
          yield d.text;
        }
      };
      checkFolderPath(o.out);
      let bar: Progress | null = null;
      const r = trainBpe(texts(), {
        vocabSize: o.vocab,
        kind: o.kind,
        characterCoverage: o.coverage,
        onProgress: o.quiet ? undefined : (p) => {
          if (p.phase !== 'merge') return;
          bar ??= new Progress('merges', p.total, { unit: 'items' });
          bar.update(p.done);
        },
      });
      (bar as Progress | null)?.finish();
      if (docs === 0) throw new Error(`the sources (${o.sources}) contain no documents`);
      saveTokenizer(o.out, r.tokenizer);
      const secs = (Date.now() - t0) / 1000;
      const summary = {
        out: path.join(o.out, 'tokenizer.json'), kind: r.tokenizer.kind, vocabSize: r.tokenizer.vocabSize, merges: r.merges, alphabet: r.alphabet,
        documents: docs, bytes, uniqueWords: r.words, skippedRecords: skipped, seconds: secs, sha256: r.tokenizer.hash(),
      };
      if (skipped) process.stderr.write(`skipped ${skipped} bad record(s); first: ${firstSkip}\n`);
      if (o.json) {
        process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
        return;
      }
      process.stdout.write(`wrote ${summary.out}: ${r.tokenizer.kind} BPE, vocab ${summary.vocabSize} (${r.merges} merges, ${r.alphabet} characters) from ${(bytes / 1e6).toFixed(1)} MB in ${docs} documents, ${secs.toFixed(1)} s\n`);
    });

  tok
    .command('encode')
    .description('print the token ids (and pieces) of a text')
    .requiredOption('--tokenizer <path>', 'tokenizer.json, a folder with one, or a .gguf file (its vocabulary)')
    .argument('[text]', 'text to encode (or --file)')
    .option('--file <path>', 'encode this file')
    .option('--bos', 'prepend BOS', false)
    .option('--eos', 'append EOS', false)
    .option('--json', 'print JSON', false)
    .action((text: string | undefined, o: EncodeOptions) => {
      const t = tokenizerFromFile(o.tokenizer);
      if (text === undefined && !o.file) throw new Error('give a text or --file PATH');
      const s = o.file ? fs.readFileSync(o.file, 'utf8') : text!;
      const ids = t.encode(s, { bos: o.bos, eos: o.eos });
      if (o.json) {
        process.stdout.write(JSON.stringify({ ids: Array.from(ids), tokens: Array.from(ids, (i) => t.idToToken(i)) }) + '\n');
        return;
      }
      process.stdout.write(`${ids.length} tokens\n${Array.from(ids).join(' ')}\n${Array.from(ids, (i) => JSON.stringify(t.idToToken(i))).join(' ')}\n`);
    });

  tok
    .command('decode')
    .description('print the text of token ids')
    .requiredOption('--tokenizer <path>', 'tokenizer.json, a folder with one, or a .gguf file (its vocabulary)')
    .argument('<ids...>', 'token ids (space or comma separated)')
    .action((ids: string[], o: { tokenizer: string }) => {
      const t = tokenizerFromFile(o.tokenizer);
      const list = ids.join(',').split(/[,\s]+/).filter(Boolean).map((x) => {
        const n = Number(x);
        if (!Number.isInteger(n) || n < 0) throw new Error(`not a token id: "${x}"`);
        if (n >= t.vocabSize || t.idToToken(n) === undefined) throw new Error(`${o.tokenizer}: no token has id ${n} (ids run 0..${t.vocabSize - 1})`);
        return n;
      });
      process.stdout.write(t.decode(list) + '\n');
    });

  tok
    .command('bench')
    .description('encoding speed (MB/s of UTF-8 text, one core) on text sources')
    .requiredOption('--tokenizer <path>', 'tokenizer.json, a folder with one, or a .gguf file (its vocabulary)')
    .option('--sources <list>', 'text to encode', 'moby-dick,sotu,code')
    .option('--repeat <n>', 'passes over the text (the first is cold: empty piece cache)', intArg('--repeat', 1), 3)
    .option('--peer', 'also time @huggingface/tokenizers (the dev dependency) on the same text, one pass', false)
    .option('--json', 'print JSON', false)
    .action(async (o: BenchOptions) => {
      const t = tokenizerFromFile(o.tokenizer);
      const docs = [...readSources(parseSources(o.sources))].map((d) => d.text);
      let bytes = 0;
      for (const d of docs) bytes += Buffer.byteLength(d);
      const passes: { seconds: number; mbPerSecond: number; tokens: number }[] = [];
      for (let r = 0; r < o.repeat; r++) {
        const t0 = process.hrtime.bigint();
        let tokens = 0;
        for (const d of docs) tokens += t.encode(d).length;
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        passes.push({ seconds: s, mbPerSecond: bytes / 1e6 / s, tokens });
      }
      let peer: { seconds: number; mbPerSecond: number; identical: boolean } | null = null;
      if (o.peer) {
        let HF: new (json: object, config: object) => { encode(text: string, o: { add_special_tokens: boolean }): { ids: number[] } };
        try {
          HF = (await import('@huggingface/tokenizers')).Tokenizer;
        } catch {
          throw new Error('--peer needs the dev dependency @huggingface/tokenizers (npm install --save-dev @huggingface/tokenizers)');
        }
        const ref = new HF(JSON.parse(t.toJSON()), {});
        const t0 = process.hrtime.bigint();
        let identical = true;
        const outs = docs.map((d) => ref.encode(d, { add_special_tokens: false }).ids);
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        docs.forEach((d, k) => {
          const a = t.encode(d);
          const b = outs[k]!;
          if (a.length !== b.length || a.some((x, i) => x !== b[i])) identical = false;
        });
        peer = { seconds: s, mbPerSecond: bytes / 1e6 / s, identical };
      }
      const res = { tokenizer: o.tokenizer, sources: o.sources, documents: docs.length, bytes, vocabSize: t.vocabSize, passes, bytesPerToken: bytes / (passes[0]?.tokens ?? 1), peer };
      if (o.json) {
        process.stdout.write(JSON.stringify(res, null, 2) + '\n');
        return;
      }
      process.stdout.write(`${(bytes / 1e6).toFixed(2)} MB in ${docs.length} documents, ${passes[0]!.tokens} tokens (${res.bytesPerToken.toFixed(2)} bytes/token), vocab ${t.vocabSize}\n`);
      passes.forEach((p, k) => process.stdout.write(`pass ${k + 1}${k === 0 ? ' (cold cache)' : ''}: ${p.seconds.toFixed(2)} s, ${p.mbPerSecond.toFixed(1)} MB/s\n`));
      if (peer) process.stdout.write(`@huggingface/tokenizers: ${peer.seconds.toFixed(2)} s, ${peer.mbPerSecond.toFixed(2)} MB/s (ours, cold: ${(passes[0]!.mbPerSecond / peer.mbPerSecond).toFixed(1)}x); ids ${peer.identical ? 'identical' : 'DIFFER'}\n`);
    });
}
