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
import { pidAlive, removeStaleTempsIn } from './atomic.js';

export const LOCK = 'lock';

const held = new Set<string>(); // lock files this process wrote
let exitHook = false;

/**
 * Takes DIR/lock for this process (creating DIR) and removes temp files that dead writers left in
 * it. `busy(pid)` is the refusal when another live process holds it: one line saying what to do.
 * Taking a lock this process holds is a no-op.
 */
export function lockFolder(dir: string, busy: (pid: number) => string): void {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK);
  for (let tries = 0; tries < 3; tries++) {
    let taken = false;
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      taken = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`${file}: cannot write the folder's lock file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (taken) {
      hold(file);
      removeStaleTempsIn(dir); // the folder is ours now: what killed writers left half-written goes
      return;
    }
    let pid = NaN;
    try {
      pid = Number(fs.readFileSync(file, 'utf8').trim());
    } catch { /* removed meanwhile: try again */ }
    if (pid === process.pid) {
      hold(file); // ours (or a pid reused across runs, as PID 1 in a container): released at exit like any other
      return;
    }
    if (Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid)) throw new Error(`${dir}: ${busy(pid)}`);
    fs.rmSync(file, { force: true }); // its writer died
  }
  throw new Error(`${dir}: could not take the lock file ${file}; remove it if no process is writing the folder`);
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
  const file = path.join(dir, LOCK);
  releaseIfOurs(file);
  held.delete(file);
}

function releaseIfOurs(file: string): void {
  try {
    if (Number(fs.readFileSync(file, 'utf8').trim()) === process.pid) fs.rmSync(file, { force: true });
  } catch { /* not held */ }
}
