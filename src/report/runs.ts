// Reading eval output folders (what `longctx eval --out DIR` wrote) back as runs to chart and
// compare. Every error is one line naming the folder or file and saying what to do.

import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { EvalResults } from '../eval/run.js';
import type { EvalRun } from './charts.js';
import { jsonErrorText } from '../util/json-error.js';

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

// The arrays each task's charts and tables read: checked so a hand-edited or truncated file fails
// with its name instead of a TypeError deep inside a chart.
const TASK_ARRAYS: Record<string, string[]> = {
  ppl: ['byLength', 'positions'],
  copy: ['byDistance'],
  'first-sentence': ['byLength'],
  passkey: ['byLength', 'grid'],
  needle: ['byLength', 'grid'],
  ruler: ['byLength'],
};

/** Checks the parts of results.json that reports read; throws naming `file` and the field. */
export function validateEvalResults(x: unknown, file: string): EvalResults {
  if (!isObject(x) || x.format !== 'longctx-eval') throw new Error(`${file}: not a longctx eval results file (no "format": "longctx-eval"); point at a folder written by longctx eval --out`);
  if (x.version !== 1) throw new Error(`${file}: results version ${JSON.stringify(x.version)} is not supported (this longctx reads version 1); re-run longctx eval`);
  for (const k of ['model', 'settings', 'tasks', 'tokenizer', 'timing']) {
    if (!isObject(x[k])) throw new Error(`${file}: field "${k}" is missing or not an object; re-run longctx eval`);
  }
  const tasks = x.tasks as Record<string, unknown>;
  for (const [t, v] of Object.entries(tasks)) {
    if (!isObject(v)) throw new Error(`${file}: field "tasks.${t}" is not an object; re-run longctx eval`);
    for (const a of TASK_ARRAYS[t] ?? []) {
      const rows = v[a];
      if (!Array.isArray(rows)) throw new Error(`${file}: field "tasks.${t}.${a}" is missing or not an array; re-run longctx eval`);
      // their rows hold numbers (NaN is written as null), flags and counts: a string ("NaN") would
      // be drawn as a number
      rows.forEach((row: unknown, i) => {
        if (!isObject(row)) throw new Error(`${file}: field "tasks.${t}.${a}[${i}]" is not an object; re-run longctx eval`);
        for (const [k, val] of Object.entries(row)) {
          if (typeof val === 'string') throw new Error(`${file}: field "tasks.${t}.${a}[${i}].${k}" is the string ${JSON.stringify(val.slice(0, 20))}, not a number; re-run longctx eval`);
        }
      });
    }
  }
  const model = x.model as Record<string, unknown>;
  if (typeof model.name !== 'string') throw new Error(`${file}: field "model.name" is not a string; re-run longctx eval`);
  if (model.trainedContext !== null && typeof model.trainedContext !== 'number') throw new Error(`${file}: field "model.trainedContext" is not a number or null; re-run longctx eval`);
  return x as unknown as EvalResults;
}

/** results.json of an eval output folder (or the path of a results.json itself). */
export function readEvalResults(dirOrFile: string): EvalResults {
  if (!existsSync(dirOrFile)) throw new Error(`${dirOrFile}: not an eval output folder: it does not exist`);
  const file = statSync(dirOrFile).isDirectory() ? path.join(dirOrFile, 'results.json') : dirOrFile;
  if (!existsSync(file)) throw new Error(`${dirOrFile}: not an eval output folder: it has no results.json (write one with longctx eval MODEL --out ${dirOrFile})`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${jsonErrorText(e)}); re-run longctx eval`);
  }
  return validateEvalResults(json, file);
}

/** The eval folder of DIR or of a results.json given directly (as given, not resolved). */
export function evalFolder(p: string): string {
  return existsSync(p) && !statSync(p).isDirectory() ? path.dirname(p) : p;
}

/**
 * Legend names for folders: each folder's name; where two different folders share one, enough
 * parent folders to tell them apart (a/eval, b/eval); the same folder twice gets a number.
 */
export function runNames(dirs: string[]): string[] {
  const keys = dirs.map((d) => path.resolve(evalFolder(d)));
  const parts = keys.map((k) => k.split(path.sep).filter(Boolean));
  const names = parts.map((p) => p[p.length - 1] ?? '/');
  const clashes = (i: number): boolean => names.some((n, j) => j !== i && n === names[i] && keys[j] !== keys[i]);
  for (let depth = 2; ; depth++) {
    const grow = names.map((_, i) => clashes(i) && parts[i]!.length >= depth);
    if (!grow.some(Boolean)) break;
    grow.forEach((g, i) => { if (g) names[i] = parts[i]!.slice(-depth).join('/'); });
  }
  const seen = new Map<string, number>();
  return names.map((n) => {
    const k = (seen.get(n) ?? 0) + 1;
    seen.set(n, k);
    return k === 1 ? n : `${n} (${k})`;
  });
}

/** Eval output folders as runs, named by `names` (same count as dirs) or by runNames. */
export function loadEvalRuns(dirs: string[], names?: string[]): EvalRun[] {
  if (dirs.length === 0) throw new Error('give at least one eval output folder');
  if (names && names.length !== dirs.length) throw new Error(`--names has ${names.length} name${names.length === 1 ? '' : 's'} for ${dirs.length} folder${dirs.length === 1 ? '' : 's'}; give one per folder`);
  if (names) {
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw new Error(`--names: "${dup}" is given twice; each run needs its own name (it is the legend entry)`);
  }
  const given = names ?? runNames(dirs);
  return dirs.map((dir, i) => ({ name: given[i]!, results: readEvalResults(dir), dir: evalFolder(dir) }));
}
