// What the instruction-tuning tests share: self-instruct files written by hand (documents from
// Moby-Dick with known questions and answers), a chat JSONL, and a fake OpenAI-compatible generator
// that returns well-formed <question>/<answer> pairs and scripted verdicts.

import * as http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { parseSources, readSources } from '../../src/data/sources.js';
import { sha256, type DocRecord, type PairRecord } from '../../src/instruct/generate.js';
import type { Tokenizer } from '../../src/data/tokenizer/tokenizer.js';

/** The first n chapters of Moby-Dick (the front matter skipped) as { doc, text }. */
export function mobyDocs(n: number): { doc: string; text: string }[] {
  return [...readSources(parseSources('moby-dick'))].filter((d) => d.id.startsWith('chapter-')).slice(0, n).map((d) => ({ doc: `${d.source}/${d.id}`, text: d.text }));
}

/**
 * dir/name.jsonl with one verified pair per (doc, question, answer) and dir/name.docs.jsonl with the
 * documents; the span of each pair is the last 200 characters of its document (the end, so a
 * truncated document must keep it on purpose).
 */
export function writePairs(dir: string, name: string, docs: { doc: string; text: string }[], qa: { doc: number; q: string; a: string; kind?: 'normal' | 'short' }[]): string {
  const file = path.join(dir, `${name}.jsonl`);
  const recs: PairRecord[] = qa.map((x) => {
    const d = docs[x.doc]!;
    return {
      v: 1, doc: d.doc, span: [Math.max(0, d.text.length - 200), d.text.length], seed: 0, kind: x.kind ?? 'normal', status: 'verified',
      question: x.q, answer: x.a, verdict: 'yes', critique: 'Yes.', generator: 'hand', chunk_tokens: 50,
    };
  });
  writeFileSync(file, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const docRecs: DocRecord[] = docs.map((d) => ({ v: 1, doc: d.doc, sha256: sha256(d.text), text: d.text }));
  writeFileSync(path.join(dir, `${name}.docs.jsonl`), docRecs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

export interface FakeGenerator {
  url: string;
  calls: { generate: number; verify: number };
  close(): Promise<void>;
}

/**
 * A plain OpenAI-compatible server (no /longctx routes: the client needs --tokenizer) that decodes
 * each prompt: a generation prompt gets "<question>Q</question> <answer>A</answer>" (every
 * `unparseableEvery`-th one gets prose without tags instead), a verification prompt "Yes." or, for
 * every `noEvery`-th one, "No, the text does not say that."
 */
export async function fakeGenerator(tok: Tokenizer, opts: { noEvery: number; unparseableEvery: number }): Promise<FakeGenerator> {
  const calls = { generate: 0, verify: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method === 'GET' && req.url === '/v1/models') return send(200, { object: 'list', data: [{ id: 'fake', object: 'model', max_model_len: 4096 }] });
      if (req.method !== 'POST' || req.url !== '/v1/completions') return send(404, { error: { message: 'no such route' } });
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { prompt: number[] };
      const prompt = tok.decode(body.prompt, { skipSpecial: true });
      let text: string;
      if (prompt.includes('Proposed answer:')) {
        calls.verify++;
        text = calls.verify % opts.noEvery === 0 ? 'No, the text does not say that.' : 'Yes. The text says so.';
      } else {
        calls.generate++;
        const words = /"""([\s\S]*?)"""/.exec(prompt)?.[1]?.split(/\s+/).filter((w) => /^[A-Za-z]{4,}$/.test(w)) ?? [];
        text = calls.generate % opts.unparseableEvery === 0
          ? 'Here is a question about the text, and its answer.'
          : ` <question>Which word comes first in the chunk?</question>\n<answer>${words[0] ?? 'none'}</answer>`;
      }
      send(200, { id: 'x', object: 'text_completion', choices: [{ index: 0, text, finish_reason: 'stop' }] });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    calls,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
