// One writer per folder: DIR/lock holds the writer's pid. A second process (a --resume started while
// the run still trains, a second `data prepare` into the same folder) is refused instead of
// interleaving its writes; a lock whose process is gone (a kill, a crash) is stale and taken over.
//
// The locks this process holds are also released when it exits, however it exits: a command that
// fails after taking one (a NaN loss, a changed input) must not leave a lock that a later process
// with a reused pid would read as live. This is the one piece of process-wide state here, and it
// only mirrors files on disk.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { pidAlive, removeStaleTempsIn, tempSuffix } from './atomic.js';

export const LOCK = 'lock';

const held = new Set<string>(); // lock files this process wrote
let exitHook = false;

/**
 * Takes DIR/lock for this process (creating DIR) and removes temp files that dead writers left in
 * it. `busy(pid)` is the refusal when another live process holds it: one line saying what to do.
 * Taking a lock this process holds is a no-op.
 *
 * Two races are closed here. A lock appears with its pid already in it (a complete temp file is
 * hard-linked into place), so a reader never sees an empty lock and mistakes it for a dead one. And
 * a stale lock is removed only by the process holding DIR/lock.takeover, after re-reading it: two
 * processes that both find a dead pid would otherwise both delete "the stale lock", the second one
 * deleting the first one's fresh lock, and both would write the folder.
 */
export function lockFolder(dir: string, busy: (pid: number) => string): void {
  fs.mkdirSync(dir, { recursive: true });
  if (lockFile(path.join(dir, LOCK), dir, busy)) removeStaleTempsIn(dir); // the folder is ours now: what killed writers left half-written goes
}

/**
 * Takes the lock file `file` (its folder must exist) for this process, as lockFolder does for a
 * whole folder: for writers that share a folder with others, each with its own files (one
 * `instruct generate --out` among others). Errors start with `what`. True if newly taken, false if
 * this process holds it already.
 */
export function lockFile(file: string, what: string, busy: (pid: number) => string): boolean {
  for (let tries = 0; tries < 200; tries++) {
    if (createLockFile(file)) {
      hold(file);
      return true;
    }
    const text = readLockText(file);
    if (text === undefined) continue; // released meanwhile: try again
    if (text.trim() === '' && youngerThan(file, 5000)) {
      sleepMs(5); // created without hard links a moment ago: its pid is on its way
      continue;
    }
    const pid = Number(text.trim());
    if (pid === process.pid) {
      // held by this process already (false), or left by an earlier process that had our pid (PID 1
      // in a container, killed): that one is dead, so the lock is newly ours (true)
      const mine = held.has(file);
      hold(file); // released at exit like any other
      return !mine;
    }
    if (Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid)) throw new Error(`${what}: ${busy(pid)}`);
    removeStaleLock(what, file, text); // its writer died
  }
  throw new Error(`${what}: could not take the lock file ${file}; remove it if no process is writing there`);
}

/** Creates `file` holding this pid, atomically and only if it does not exist; false if it exists. */
function createLockFile(file: string): boolean {
  const tmp = `${file}.tmp-${tempSuffix()}`;
  try {
    fs.writeFileSync(tmp, `${process.pid}\n`, { flag: 'wx' });
  } catch (e) {
    throw new Error(`${file}: cannot write the lock file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw new Error(`${file}: cannot write the lock file (${code ?? (e as Error).message})`);
    // a file system without hard links: exclusive create, whose pid lands a moment later
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return true;
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw new Error(`${file}: cannot write the lock file (${(e2 as NodeJS.ErrnoException).code ?? (e2 as Error).message})`);
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function readLockText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Removes `file` if it still reads `staleText`, holding DIR/lock.takeover meanwhile so that no other
 * process can remove a lock that was taken after this one read the stale one. A process that finds
 * the takeover held by a live process waits a moment and lets its caller read the lock again.
 */
function removeStaleLock(what: string, file: string, staleText: string): void {
  const guard = `${file}.takeover`;
  if (!createLockFile(guard)) {
    const guardText = readLockText(guard);
    const other = Number((guardText ?? '').trim());
    if (guardText === undefined || (Number.isSafeInteger(other) && other > 0 && pidAlive(other))) {
      sleepMs(5);
      return;
    }
    // its writer died in the microseconds between taking and releasing it
    throw new Error(`${what}: a process died while taking over a stale lock; if no process is writing there, remove ${guard} and ${file}`);
  }
  try {
    // only this process can remove the lock now, and a stale one cannot come alive: if it still
    // reads the same, it is still the dead writer's
    if (readLockText(file) === staleText) fs.rmSync(file, { force: true });
  } finally {
    fs.rmSync(guard, { force: true });
  }
}

function youngerThan(file: string, ms: number): boolean {
  try {
    return Date.now() - fs.statSync(file).mtimeMs < ms;
  } catch {
    return false;
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function hold(file: string): void {
  held.add(file);
  if (!exitHook) {
    process.on('exit', () => { for (const f of held) releaseIfOurs(f); });
    exitHook = true;
  }
}

/** Releases DIR/lock if this process holds it. */
export function unlockFolder(dir: string): void {
  unlockFile(path.join(dir, LOCK));
}

/** Releases the lock file `file` if this process holds it. */
export function unlockFile(file: string): void {
  releaseIfOurs(file);
  held.delete(file);
}

function releaseIfOurs(file: string): void {
  try {
    if (Number(fs.readFileSync(file, 'utf8').trim()) === process.pid) fs.rmSync(file, { force: true });
  } catch { /* not held */ }
}
