// The layering of src/, written down in docs/ARCHITECTURE.md ("Layers"): a folder imports only from
// folders in lower layers (and from itself). This reads every import of every source file, type-only
// and re-exports included, and fails on one that runs up or sideways.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = path.join(ROOT, 'src');

/** lower layers first; folders of one layer do not import each other */
export const LAYERS: string[][] = [
  ['util', 'version.ts'],
  ['kernels'],
  ['model'],
  ['data'],
  ['io'],
  ['train', 'eval'],
  ['instruct', 'report', 'serve', 'bench'],
  ['recipes'],
  ['cli'],
  ['index.ts'],
];

const layerOf = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i] as const)));

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** every relative module specifier: import / import type / export ... from / import('...') */
export function relativeImports(text: string): string[] {
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;
  return [...text.matchAll(re)].map((m) => m[1]!);
}

const room = (file: string): string => path.relative(SRC, file).split(path.sep)[0]!;

test('architecture: the layer table names every folder of src/ once', () => {
  const rooms = fs.readdirSync(SRC).sort();
  assert.deepEqual([...layerOf.keys()].sort(), rooms);
});

test('architecture: no import runs up or sideways across the layers of docs/ARCHITECTURE.md', () => {
  const bad: string[] = [];
  let edges = 0;
  for (const file of sources(SRC)) {
    const from = room(file);
    for (const spec of relativeImports(fs.readFileSync(file, 'utf8'))) {
      const target = path.resolve(path.dirname(file), spec);
      assert.ok(target.startsWith(SRC + path.sep), `${path.relative(ROOT, file)} imports ${spec}, outside src/`);
      const to = room(target.replace(/\.js$/, '.ts'));
      if (to === from) continue;
      edges++;
      const a = layerOf.get(from)!, b = layerOf.get(to)!;
      if (b >= a) bad.push(`${path.relative(ROOT, file)} (${from}, layer ${a}) imports ${spec} (${to}, layer ${b})`);
    }
  }
  assert.ok(edges > 100, `only ${edges} cross-folder imports found: the parser is broken`);
  assert.deepEqual(bad, []);
});

test('architecture: docs/ARCHITECTURE.md shows the same layers as this test', () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
  const m = /## Layers\n[\s\S]*?```\n([\s\S]*?)```/.exec(doc);
  assert.ok(m, 'docs/ARCHITECTURE.md has no "## Layers" section with a code block');
  const rows = m[1]!.trim().split('\n').map((l) => l.replace(/^\s*\d+\s+/, '').split(/[\s,]+/).filter(Boolean));
  assert.deepEqual(rows, LAYERS);
});

test('architecture: the import parser sees every form', () => {
  const text = [
    "import { a } from '../a/x.js';",
    "import type { B } from './b.js';",
    "export { c } from '../../c/y.js';",
    "export * from './d.js';",
    "const m = await import('../e/z.js');",
    "import './side-effect.js';",
    "import * as fs from 'node:fs';",
  ].join('\n');
  assert.deepEqual(relativeImports(text), ['../a/x.js', './b.js', '../../c/y.js', './d.js', '../e/z.js', './side-effect.js']);
});
