// The README's Library example runs as written: the ```js block under "## Library" with the package
// name pointed at this build and the run folder at a model folder made here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { longctx } from './bin.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('README: the Library example opens a model folder, scores text and generates', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Library'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, 'the Library section has a js block');
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-readme-'));
  try {
    const model = path.join(dir, 'm');
    assert.equal(longctx('init', '--preset', 'tiny', '--out', model).code, 0);
    const file = path.join(dir, 'example.mjs');
    writeFileSync(file, code
      .replace("from 'longctx'", `from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', 'src', 'index.js')).href)}`)
      .replace("'out/repro/runs/abf'", JSON.stringify(model)));
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^mean loss \d+\.\d+/);
    const loss = Number(lines[0]!.split(' ').pop());
    assert.ok(loss > 0 && loss < 20, `mean loss ${loss}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('README: every function the Library section names is exported by the package', async () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Library'), readme.indexOf('\n## ', readme.indexOf('## Library') + 1));
  const prose = section.replace(/```[\s\S]*?```/g, '');
  const names = [...new Set([...prose.matchAll(/`([a-z][A-Za-z0-9]+)`/g)].map((m) => m[1]!))].filter((n) => /[A-Z]/.test(n) || ['repro', 'pretrain', 'extend'].includes(n));
  assert.ok(names.length >= 20, names.join(' '));
  const lib = (await import(pathToFileURL(path.join(ROOT, 'dist', 'src', 'index.js')).href)) as Record<string, unknown>;
  for (const n of names) assert.equal(typeof lib[n], 'function', `${n} is named in the README's Library section but not exported as a function`);
});
