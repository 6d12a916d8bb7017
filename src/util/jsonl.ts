// Reading the user's JSONL files (QA and multiple choice): one JSON object per line, blank lines
// skipped, every problem reported as one line naming file:line and the field.

import * as fs from 'node:fs';
import { jsonErrorText } from './json-error.js';

export class JsonlError extends Error {
  override name = 'JsonlError';
}

/** Parsed objects with their 1-based line numbers. */
export function readJsonl(file: string): { line: number; value: Record<string, unknown> }[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new JsonlError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const out: { line: number; value: Record<string, unknown> }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new JsonlError(`${file}:${i + 1}: not valid JSON (${jsonErrorText(e)})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JsonlError(`${file}:${i + 1}: expected a JSON object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
    out.push({ line: i + 1, value: v as Record<string, unknown> });
  }
  if (out.length === 0) throw new JsonlError(`${file}: no lines (expected one JSON object per line)`);
  return out;
}

/** Field readers that name file:line and the field in their errors. */
export function fieldReader(file: string, line: number, v: Record<string, unknown>) {
  const where = `${file}:${line}`;
  return {
    where,
    optionalString(key: string): string | undefined {
      const x = v[key];
      if (x === undefined || x === null) return undefined;
      if (typeof x !== 'string') throw new JsonlError(`${where}: field "${key}" must be a string, got ${JSON.stringify(x).slice(0, 40)}`);
      return x;
    },
    string(key: string): string {
      const x = this.optionalString(key);
      if (x === undefined) throw new JsonlError(`${where}: missing field "${key}" (a string)`);
      return x;
    },
    /** a string or a non-empty list of strings */
    strings(key: string): string[] | undefined {
      const x = v[key];
      if (x === undefined || x === null) return undefined;
      if (typeof x === 'string') return [x];
      if (!Array.isArray(x) || x.length === 0 || !x.every((s) => typeof s === 'string')) {
        throw new JsonlError(`${where}: field "${key}" must be a string or a non-empty list of strings`);
      }
      return x as string[];
    },
    optionalIndex(key: string, n: number): number | undefined {
      const x = v[key];
      if (x === undefined || x === null) return undefined;
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= n) {
        throw new JsonlError(`${where}: field "${key}" must be an integer index into the ${n} choices, got ${JSON.stringify(x).slice(0, 40)}`);
      }
      return x;
    },
  };
}
