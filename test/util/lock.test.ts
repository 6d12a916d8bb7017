// One writer per folder, under real concurrency: several processes started at the same instant
// contend for one folder, with no lock, or with a dead writer's lock, and exactly one may win.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { lockFile, lockFolder, unlockFolder } from '../../src/util/lock.js';

const LOCK_JS = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/util/lock.js')).href;

/** A pid that belonged to a process which has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

/** Starts `n` processes that all call lockFolder(dir) at `startAt` (ms since epoch) and hold a won lock for `holdMs`. */
async function contend(dir: string, n: number, holdMs: number): Promise<string[]> {
  const startAt = Date.now() + 400;
  const script = `
    const { lockFolder } = await import(${JSON.stringify(LOCK_JS)});
    while (Date.now() < ${startAt}) {}
    try {
      lockFolder(${JSON.stringify(dir)}, (pid) => 'busy ' + pid);
      console.log('won');
      await new Promise((r) => setTimeout(r, ${holdMs}));
    } catch (e) { console.log('refused: ' + e.message); }`;
  const outs = await Promise.all(Array.from({ length: n }, () => new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('exit', () => resolve(out.trim()));
  })));
  return outs;
}

test('lockFolder: of processes contending at one instant, exactly one wins, with no lock before and with a dead writer\'s lock', async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'longctx-lock-'));
  try {
    for (let round = 0; round < 6; round++) {
      const dir = path.join(root, `r${round}`);
      const stale = round % 2 === 1;
      if (stale) {
        lockFolder(dir, () => 'busy'); // creates the folder
        unlockFolder(dir);
        writeFileSync(path.join(dir, 'lock'), `${deadPid()}\n`);
      }
      const outs = await contend(dir, 5, 700);
      const won = outs.filter((o) => o === 'won').length;
      assert.equal(won, 1, `round ${round} (${stale ? 'a dead writer\'s lock' : 'no lock'}): ${won} processes took the lock:\n${outs.join('\n')}`);
      for (const o of outs.filter((x) => x !== 'won')) assert.match(o, /^refused: .*busy \d+$/, 'the others are refused as busy, naming the winner');
      assert.ok(!existsSync(path.join(dir, 'lock')), 'the winner released its lock at exit');
      assert.deepEqual(readdirSync(dir), [], 'no temp or takeover file is left behind');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('lockFolder: a lock file holding garbage is stale and taken over; a live writer\'s is refused by pid', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'longctx-lock-'));
  try {
    writeFileSync(path.join(dir, 'lock'), 'not a pid');
    lockFolder(dir, () => 'busy');
    assert.equal(readFileSync(path.join(dir, 'lock'), 'utf8'), `${process.pid}\n`);
    unlockFolder(dir);
    // a lock with our own pid that we do not hold (an earlier process had our pid: PID 1 in a
    // container) is newly ours; taking it again while we hold it is not
    writeFileSync(path.join(dir, 'lock'), `${process.pid}\n`);
    assert.equal(lockFile(path.join(dir, 'lock'), dir, () => 'busy'), true);
    assert.equal(lockFile(path.join(dir, 'lock'), dir, () => 'busy'), false);
    unlockFolder(dir);
    const live = process.ppid; // the test runner: alive for as long as this test runs
    writeFileSync(path.join(dir, 'lock'), `${live}\n`);
    assert.throws(() => lockFolder(dir, (pid) => `held by ${pid}`), new RegExp(`^Error: ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: held by ${live}$`));
    assert.equal(readFileSync(path.join(dir, 'lock'), 'utf8'), `${live}\n`, 'a refused process leaves the lock as it was');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
