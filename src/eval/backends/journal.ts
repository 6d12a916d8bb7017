// A long evaluation against a server survives an interruption: every answered call is appended to a
// journal (OUT/calls.jsonl) as it arrives, and a re-run answers the same calls from it instead of
// asking again. The probes build their prompts from a seed, so a re-run with the same settings asks
// exactly the same calls; keying each one by a hash of the request (and of the server's identity:
// URL, model id, tokenizer) makes a changed setting simply miss. Every finished example is kept
// this way, whatever task it belongs to, without the probes knowing.
//
// A torn last line (a kill mid-append) is cut off when the journal is opened. The journal is not a cache across models: a
// different served model under the same id and tokenizer would be answered from it, so `eval
// --restart` ignores it, and eval removes it once results.json is written.

import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import type { EvalModel, GenerateOptions, TokenProgress } from '../model.js';

export interface Journal {
  file: string;
  /** calls answered from the journal in this process */
  hits: number;
  /** calls the model answered (and were appended) */
  misses: number;
  /** entries read from an earlier run */
  kept: number;
}

type Entry = { k: string; v: number[] };

/** `model` with its tokenLogprobs / generate / continuationLogprobs answered from and appended to `file`. */
export function journaled(model: EvalModel, file: string, identity: unknown, opts: { restart?: boolean } = {}): { model: EvalModel; journal: Journal } {
  const id = JSON.stringify(identity);
  const known = new Map<string, number[]>();
  if (opts.restart) fs.rmSync(file, { force: true });
  else if (fs.existsSync(file)) {
    let text = fs.readFileSync(file, 'utf8');
    // a kill mid-append leaves a torn last line: cut it, so the next answer starts on a line of its own
    if (text !== '' && !text.endsWith('\n')) {
      text = text.slice(0, text.lastIndexOf('\n') + 1);
      fs.truncateSync(file, Buffer.byteLength(text));
    }
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        const e = JSON.parse(line) as Entry;
        if (typeof e.k === 'string' && Array.isArray(e.v)) known.set(e.k, e.v);
      } catch { /* a torn last line */ }
    }
  }
  const journal: Journal = { file, hits: 0, misses: 0, kept: known.size };
  const key = (...parts: unknown[]): string => createHash('sha256').update(id).update('\0').update(JSON.stringify(parts)).digest('hex');
  const ask = async (k: string, compute: () => Promise<ArrayLike<number>>, onHit: () => void): Promise<number[]> => {
    const got = known.get(k);
    if (got) {
      journal.hits++;
      onHit();
      return got;
    }
    const v = Array.from(await compute());
    known.set(k, v);
    try {
      fs.appendFileSync(file, JSON.stringify({ k, v } satisfies Entry) + '\n');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(`${file}: cannot keep the server's answer (${code === 'ENOSPC' ? 'no space left on the device' : (e as Error).message}); the answers kept so far are intact: free some space and run again`);
    }
    journal.misses++;
    return v;
  };
  const wrapped: EvalModel = {
    name: model.name,
    maxContext: model.maxContext,
    tokenizer: model.tokenizer,
    ...(model.trainedContext !== undefined ? { trainedContext: model.trainedContext } : {}),
    ...(model.info !== undefined ? { info: model.info } : {}),
    ...(model.concurrency !== undefined ? { concurrency: model.concurrency } : {}),
    async tokenLogprobs(tokens: Int32Array, from = 1, onProgress?: TokenProgress): Promise<Float64Array> {
      const v = await ask(key('lp', Array.from(tokens), from), () => model.tokenLogprobs(tokens, from, onProgress), () => onProgress?.(tokens.length - 1, tokens.length - 1));
      return Float64Array.from(v);
    },
    async generate(prompt: Int32Array, maxNew: number, o: GenerateOptions = {}): Promise<Int32Array> {
      const v = await ask(key('gen', Array.from(prompt), maxNew, o.stop ?? [], o.sampling ?? null), () => model.generate(prompt, maxNew, o),
        () => o.onProgress?.(prompt.length + maxNew, prompt.length + maxNew));
      return Int32Array.from(v);
    },
  };
  const cont = model.continuationLogprobs?.bind(model);
  if (cont) {
    wrapped.continuationLogprobs = async (context, conts, onProgress) => {
      // one entry per call: the continuations' values end to end, cut back by their lengths
      const v = await ask(key('cont', Array.from(context), conts.map((c) => Array.from(c))), async () => {
        const parts = await cont(context, conts, onProgress);
        return parts.flatMap((p) => Array.from(p));
      }, () => onProgress?.(1, 1));
      let at = 0;
      return conts.map((c) => Float64Array.from(v.slice(at, (at += c.length))));
    };
  }
  return { model: wrapped, journal };
}
