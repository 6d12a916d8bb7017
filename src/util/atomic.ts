// Atomic writes: a reader (or a crash) sees either the previous complete file/folder or the new
// complete one, never a half-written one. Synchronous fs throughout (writes are rare and big).
//
// Files:   write `${path}.tmp-${pid}-${random}` in the same directory, fsync it, rename it over
//          `path` (atomic on POSIX within one file system), fsync the directory so the rename
//          itself is durable.
// Folders: see writeDirAtomic below.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Bytes, text (written as UTF-8), or a list of byte chunks written one after another (never concatenated). */
export type FileData = Uint8Array | string | Uint8Array[];

// writeSync/readSync move at most ~2 GiB per call on Linux; stay well below that.
const MAX_IO = 1 << 30;

/** `PID-RANDOM`: the suffix of temp names that removeStaleTempsIn recognises (and removes once PID is gone). */
export function tempSuffix(): string {
  return `${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Write every byte of `chunk` to `fd`, looping over partial writes. */
function writeAll(fd: number, chunk: Uint8Array): void {
  let off = 0;
  while (off < chunk.byteLength) {
    const len = Math.min(chunk.byteLength - off, MAX_IO);
    const n = fs.writeSync(fd, chunk, off, len);
    if (n <= 0) throw new Error(`write returned ${n}`);
    off += n;
  }
}

function toChunks(data: FileData): Uint8Array[] {
  if (typeof data === 'string') return [Buffer.from(data, 'utf8')];
  if (data instanceof Uint8Array) return [data];
  return data;
}

/** fsync an open descriptor of a directory; file systems/platforms that refuse (EINVAL, EISDIR on some) are tolerated. */
function fsyncDirFd(fd: number): void {
  try {
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'ENOTSUP') throw e;
  }
}

/** fsync a file or a directory by path (directories: makes renames/creations inside it durable). */
export function fsyncFile(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    if (fs.fstatSync(fd).isDirectory()) fsyncDirFd(fd);
    else fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Plain (non-atomic) write of `data` to `p`, chunk by chunk, optionally fsynced. The building block of
 * writeFileAtomic, and what a writeDirAtomic `fill` can use inside its temp folder.
 */
export function writeFileChunks(p: string, data: FileData, opts: { fsync?: boolean } = {}): void {
  const fd = fs.openSync(p, 'w', 0o644);
  try {
    for (const chunk of toChunks(data)) writeAll(fd, chunk);
    if (opts.fsync) fs.fsyncSync(fd);
  } catch (e) {
    // write(2) errors carry no path ("ENOSPC: no space left on device, write"): give them the file's
    const err = e as NodeJS.ErrnoException;
    if (typeof err?.code === 'string' && err.path === undefined) err.path = p;
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}

function rmQuiet(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    // best effort: the original error matters more
  }
}

/**
 * Atomically replace `p` with `data`: temp file beside it, fsync, rename, fsync the directory.
 * On failure the temp file is removed and `p` is untouched.
 */
export function writeFileAtomic(p: string, data: FileData): void {
  removeStaleTemps(p);
  const tmp = `${p}.tmp-${tempSuffix()}`;
  try {
    writeFileChunks(tmp, data, { fsync: true });
    fs.renameSync(tmp, p);
  } catch (e) {
    rmQuiet(tmp);
    throw namedError(p, e);
  }
  fsyncFile(path.dirname(path.resolve(p)));
}

/**
 * A system error names the file the user asked for, not our temp file or nothing at all (ENOSPC's
 * message is "no space left on device, write"), and says that the old file is intact.
 */
function namedError(p: string, e: unknown, kind: 'file' | 'folder' = 'file'): unknown {
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code !== 'string' || !/^E[A-Z]+$/.test(err.code)) return e;
  const what = err.code === 'ENOSPC' ? 'no space left on the device' : err.message.replace(/^E[A-Z]+: /, '').replace(/, \w+ '.*'$/, '').replace(/, \w+$/, '');
  const out = new Error(`${p}: cannot write (${what}); the previous ${kind}, if any, is unchanged${err.code === 'ENOSPC' ? ' (free some space and run again)' : ''}`);
  (out as NodeJS.ErrnoException).code = err.code;
  return out;
}

/** Temp files `${p}.tmp-PID-RAND` of writes whose process died (a kill mid-write) are removed before the next write. */
function removeStaleTemps(p: string): void {
  const dir = path.dirname(path.resolve(p));
  const prefix = `${path.basename(p)}.tmp-`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return; // the write itself will report the folder
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length));
    if (m && !pidAlive(Number(m[1]))) rmQuiet(path.join(dir, name));
  }
}

/**
 * Temp files and folders (`NAME.tmp-PID-RAND`) of atomic writes whose process died, anywhere in `dir`
 * and its subfolders down to `depth`, are removed: a writer that owns `dir` (util/lock.ts) calls
 * this, since a temp is otherwise only cleaned when the same file is written again. Live writers'
 * temps are left alone.
 */
export function removeStaleTempsIn(dir: string, depth = 2): void {
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of ents) {
    const m = /\.tmp-(\d+)-[0-9a-f]+$/.exec(e.name);
    if (m) {
      if (!pidAlive(Number(m[1]))) rmQuiet(path.join(dir, e.name));
    } else if (e.isDirectory() && depth > 0) {
      removeStaleTempsIn(path.join(dir, e.name), depth - 1);
    }
  }
}

/** fsync every file and folder under `root` (depth first, `root` last). */
function fsyncTree(root: string): void {
  for (const ent of fs.readdirSync(root, { withFileTypes: true })) {
    const child = path.join(root, ent.name);
    if (ent.isDirectory()) fsyncTree(child);
    else if (ent.isFile()) fsyncFile(child);
  }
  fsyncFile(root);
}

/** Whether a process with this id is running (ours counts). */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Leftovers beside `dir` from interrupted writeDirAtomic calls: `${base}.tmp-PID-RAND` and `${base}.old-PID-RAND`. */
export function dirAtomicLeftovers(dir: string): { tmp: string[]; old: string[] } {
  const abs = path.resolve(dir);
  const parent = path.dirname(abs);
  const base = path.basename(abs);
  const out = { tmp: [] as string[], old: [] as string[] };
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return out;
  }
  const re = /^\.(tmp|old)-(\d+)-[0-9a-f]+$/;
  for (const name of names) {
    if (!name.startsWith(base)) continue;
    const m = re.exec(name.slice(base.length));
    if (!m) continue;
    (m[1] === 'tmp' ? out.tmp : out.old).push(path.join(parent, name));
  }
  return out;
}

/**
 * Repair what an interrupted writeDirAtomic left beside `dir` (called by writeDirAtomic itself):
 *  - `dir` missing but `${dir}.old-*` present (crash between the two renames): the newest old folder
 *    is renamed back to `dir`;
 *  - remaining `${dir}.old-*` are removed (the complete new folder is already at `dir`);
 *  - `${dir}.tmp-PID-*` whose process PID is no longer running are removed (their fill never finished
 *    or never got swapped in). Temp folders of live processes are left alone.
 */
export function recoverDirAtomic(dir: string): void {
  const abs = path.resolve(dir);
  const { tmp, old } = dirAtomicLeftovers(abs);
  if (old.length > 0 && !fs.existsSync(abs)) {
    old.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
    fs.renameSync(old.shift()!, abs);
    fsyncFile(path.dirname(abs));
  }
  for (const o of old) rmQuiet(o);
  for (const t of tmp) {
    const pid = Number(/\.tmp-(\d+)-[0-9a-f]+$/.exec(t)?.[1]);
    if (!pidAlive(pid)) rmQuiet(t);
  }
}

/**
 * Replace the folder `dir` with one written by `fill`, all or nothing.
 *
 * Steps:
 *  1. recoverDirAtomic(dir): clean up after an earlier interrupted call (see there).
 *  2. mkdir T = `${dir}.tmp-PID-RAND` beside `dir` (same file system, so renames are atomic).
 *  3. fill(T) writes the files with plain writes (no fsync needed), possibly in subfolders.
 *  4. fsync every file and folder in T, then T's parent.
 *  5. If `dir` does not exist: rename T -> dir, fsync the parent. Done.
 *     If it exists: rename dir -> O = `${dir}.old-PID-RAND`, rename T -> dir, fsync the parent,
 *     remove O.
 *
 * What a crash leaves (the contents of `dir` are never a mix of old and new files):
 *  - before step 5: the old `dir` untouched (or none), plus a partial T (removed by the next call);
 *  - between the two renames of step 5 (a window of one syscall): no `dir`, the complete old folder
 *    as O and the complete new one as T; the next writeDirAtomic renames O back to `dir` (Node has no
 *    RENAME_EXCHANGE to swap atomically), and a reader can do the same by hand;
 *  - after the second rename: the complete new `dir`, plus O (removed by the next call).
 * If fill throws (or its promise rejects), T is removed, `dir` is untouched, and the error propagates.
 *
 * With a synchronous `fill` this function is synchronous; with an async one it returns a promise.
 */
export function writeDirAtomic(dir: string, fill: (tmpDir: string) => Promise<void>): Promise<void>;
export function writeDirAtomic(dir: string, fill: (tmpDir: string) => void): void;
export function writeDirAtomic(dir: string, fill: (tmpDir: string) => void | Promise<void>): void | Promise<void> {
  const abs = path.resolve(dir);
  const parent = path.dirname(abs);
  fs.mkdirSync(parent, { recursive: true });
  recoverDirAtomic(abs);
  const tmp = `${abs}.tmp-${tempSuffix()}`;
  fs.mkdirSync(tmp);
  // a system error names the file of the finished folder it was writing (dir/model.safetensors), not the temp folder
  const named = (e: unknown): unknown => {
    const at = (e as NodeJS.ErrnoException)?.path;
    const rel = typeof at === 'string' ? path.relative(tmp, path.resolve(at)) : '';
    return namedError(rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? path.join(dir, rel) : dir, e, 'folder');
  };

  const finish = (): void => {
    try {
      fsyncTree(tmp);
      fsyncFile(parent);
    } catch (e) {
      rmQuiet(tmp);
      throw named(e);
    }
    swapIn(abs, tmp);
  };

  let result: void | Promise<void>;
  try {
    result = fill(tmp);
  } catch (e) {
    rmQuiet(tmp);
    throw named(e);
  }
  if (result && typeof (result as Promise<void>).then === 'function') {
    return (result as Promise<void>).then(finish, (e: unknown) => {
      rmQuiet(tmp);
      throw named(e);
    });
  }
  finish();
}

function swapIn(abs: string, tmp: string): void {
  const parent = path.dirname(abs);
  if (!fs.existsSync(abs)) {
    try {
      fs.renameSync(tmp, abs);
    } catch (e) {
      rmQuiet(tmp);
      throw e;
    }
    fsyncFile(parent);
    return;
  }
  const old = `${abs}.old-${tempSuffix()}`;
  try {
    fs.renameSync(abs, old);
  } catch (e) {
    rmQuiet(tmp);
    throw e;
  }
  try {
    fs.renameSync(tmp, abs);
  } catch (e) {
    // put the old folder back so the caller sees the state before the call
    try {
      fs.renameSync(old, abs);
    } catch {
      // leave O for recoverDirAtomic
    }
    rmQuiet(tmp);
    throw e;
  }
  fsyncFile(parent);
  rmQuiet(old);
}
