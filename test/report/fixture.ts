// Two small real eval runs for the report tests: a freshly initialised tiny model with plain RoPE
// (theta 10,000, trained context 256) and the same weights with RoPE ABF (theta 500,000, trained
// context 512), each evaluated on every task at lengths 400 and 512 and written as an eval output
// folder (results.json), as `longctx eval --out` would.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { tinyConfig } from '../../src/model/config.js';
import { createModel, initWeights } from '../../src/model/llama.js';
import { refBackend } from '../../src/kernels/ref/index.js';
import { saveModelFolder } from '../../src/io/hf.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { openLocalModel } from '../../src/eval/backends/local.js';
import { openCorpus, corpusFromTexts } from '../../src/eval/corpus.js';
import { readQaFile } from '../../src/eval/probes/qa.js';
import { readMcFile } from '../../src/eval/probes/mc.js';
import { evaluate } from '../../src/eval/run.js';
import type { EvalRun } from '../../src/report/charts.js';
import { testTokenizer } from '../eval/oracle.js';

export interface Fixture {
  dir: string;
  /** a few chapters of text, for --data */
  text: string;
  /** model folders by run name */
  models: Record<string, string>;
  /** eval output folders by run name */
  evals: Record<string, string>;
  runs: EvalRun[];
}

export const RUN_NAMES = ['rope', 'abf'] as const;

export async function makeFixture(): Promise<Fixture> {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-report-'));
  const qa = path.join(dir, 'qa.jsonl');
  writeFileSync(qa, [
    { context: 'Ishmael went to sea. The ship was the Pequod.', question: 'What was the ship', answers: ['the Pequod', 'Pequod'] },
    { context: 'The captain was Ahab.', question: 'Who was the captain', answers: 'Ahab' },
    { context: 'The whale was white.', question: 'What colour was the whale', choices: ['white', 'black'], answers: ['white'] },
  ].map((l) => JSON.stringify(l)).join('\n') + '\n');
  const mc = path.join(dir, 'mc.jsonl');
  writeFileSync(mc, [
    { question: 'Which is a whale?', choices: ['sperm whale', 'oak tree'], answer: 0 },
    { context: 'The sea was calm and', choices: ['the sun shone.', 'walruses sang opera.'], answer: 0 },
  ].map((l) => JSON.stringify(l)).join('\n') + '\n');
  // a dozen chapters: long enough for 512-token sequences and haystacks, and quick to tokenize
  const chapters = openCorpus('moby-dick').texts().slice(0, 12);
  const corpus = corpusFromTexts(chapters, 'moby-dick[0:12]');
  const text = path.join(dir, 'story.txt');
  writeFileSync(text, chapters.slice(0, 4).map((d) => d.text).join('\n\n'));
  const models: Record<string, string> = {};
  const evals: Record<string, string> = {};
  const runs: EvalRun[] = [];
  for (const name of RUN_NAMES) {
    const cfg = name === 'rope' ? tinyConfig() : { ...tinyConfig(), rope_theta: 500000, max_position_embeddings: 512 };
    const m = createModel(cfg, refBackend);
    initWeights(m, 0);
    const folder = path.join(dir, 'models', name);
    saveModelFolder(folder, cfg, m.params.flat as Float32Array);
    saveTokenizer(folder, testTokenizer());
    models[name] = folder;
    const results = await evaluate(openLocalModel(folder), {
      tasks: ['ppl', 'copy', 'first-sentence', 'passkey', 'needle', 'ruler', 'qa', 'mc'], maxLen: 512, lengths: [400, 512], samples: 1,
    }, { corpus, qa: { file: qa, items: readQaFile(qa) }, mc: { file: mc, items: readMcFile(mc) } });
    const out = path.join(dir, 'evals', name);
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
    evals[name] = out;
    // what a report reads back: results.json through JSON (an Infinity alpha becomes null, as on disk)
    runs.push({ name, results: JSON.parse(JSON.stringify(results)), dir: out });
  }
  assert.equal(runs[0]!.results.model.trainedContext, 256);
  assert.equal(runs[1]!.results.model.trainedContext, 512);
  return { dir, text, models, evals, runs };
}

export function removeFixture(f: Fixture | undefined): void {
  if (f) rmSync(f.dir, { recursive: true, force: true });
}

/** The text between `<g class="...CLS..."...>` and its first `</g>`: a mark group's items. */
export function markGroups(svg: string, cls: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<g class="[^"]*\\b${cls}\\b[^"]*"[^>]*>`, 'g');
  for (const m of svg.matchAll(re)) {
    const end = svg.indexOf('</g>', m.index! + m[0].length);
    out.push(svg.slice(m.index! + m[0].length, end));
  }
  return out;
}

/** Throws unless every tag is closed in order (well-formed XML, without a full parser). */
export function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([A-Za-z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, close, name, selfClose] = m;
    if (selfClose) continue;
    if (close) {
      const open = stack.pop();
      assert.equal(open, name, `</${name}> closes <${open}> at offset ${m.index}`);
    } else stack.push(name!);
  }
  assert.deepEqual(stack, [], 'unclosed tags');
}

/** PNG width and height from its IHDR chunk, after checking the signature. */
export function pngSize(png: Uint8Array): { width: number; height: number } {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  assert.equal(String.fromCharCode(...png.subarray(12, 16)), 'IHDR');
  return { width: view.getUint32(16), height: view.getUint32(20) };
}
