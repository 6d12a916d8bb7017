// What the serve tests share: a tiny model folder with a tokenizer, and small HTTP helpers.

import * as http from 'node:http';
import path from 'node:path';
import { tinyConfig } from '../../src/model/config.js';
import { createModel, initWeights } from '../../src/model/llama.js';
import { refBackend } from '../../src/kernels/ref/index.js';
import { saveModelFolder } from '../../src/io/hf.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { testTokenizer } from '../eval/oracle.js';

/** A randomly initialised tiny model (max_position_embeddings 256) with a 512-id BPE, in dir/m. */
export function tinyModelFolder(dir: string): string {
  const folder = path.join(dir, 'm');
  const cfg = tinyConfig();
  const m = createModel(cfg, refBackend);
  initWeights(m, 3);
  // larger weights than the init, so the distribution is far from uniform and greedy choices are clear
  for (let i = 0; i < m.params.flat.length; i++) m.params.flat[i]! *= 4;
  saveModelFolder(folder, cfg, m.params.flat as Float32Array);
  saveTokenizer(folder, testTokenizer());
  return folder;
}

export interface Reply { status: number; headers: http.IncomingHttpHeaders; text: string; json(): any }

/** One request with node:http (no keep-alive, so a closing server is not held open by the test). */
export function request(url: string, method: string, body?: string | object, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request(url, { method, agent: false, headers: { ...(data ? { 'Content-Type': 'application/json', 'Content-Length': String(data.length) } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data ?? undefined);
  });
}

export const post = (url: string, body: string | object, headers: Record<string, string> = {}): Promise<Reply> => request(url, 'POST', body, headers);
export const get = (url: string, headers: Record<string, string> = {}): Promise<Reply> => request(url, 'GET', undefined, headers);

/** The JSON payloads of a server-sent-events body; asserts the framing (data: ...\n\n, [DONE] last). */
export function sseEvents(text: string): any[] {
  if (!text.endsWith('data: [DONE]\n\n')) throw new Error(`the stream does not end with data: [DONE]: ${JSON.stringify(text.slice(-80))}`);
  const blocks = text.split('\n\n');
  blocks.pop(); // after the last \n\n
  const last = blocks.pop();
  if (last !== 'data: [DONE]') throw new Error('[DONE] is not the last event');
  return blocks.map((b) => {
    if (!b.startsWith('data: ')) throw new Error(`an event does not start with "data: ": ${JSON.stringify(b.slice(0, 80))}`);
    return JSON.parse(b.slice(6));
  });
}
