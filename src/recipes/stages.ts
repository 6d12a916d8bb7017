// Cached pipeline stages for `longctx repro`: each stage owns one folder under the output folder
// and is keyed by a hash of its settings (and its inputs' keys). A finished stage whose key
// matches is skipped; a stage left half-done by Ctrl-C or a crash is resumed when it knows how
// (training runs continue from their last checkpoint) and redone otherwise; a stage whose
// settings changed is redone from scratch.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../util/atomic.js';

// The records sit beside the stage's folder (DIR.stage.json, DIR.pending.json), not in it, so the
// folder is exactly what the stage wrote (some stages refuse a non-empty output folder).

/** A stable hash of plain JSON data (object keys sorted), 16 hex digits. */
export function configHash(value: unknown): string {
  const canonical = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canonical);
    if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
    return v;
  };
  return createHash('sha256').update(JSON.stringify(canonical(value))).digest('hex').slice(0, 16);
}

export interface StageRecord { name: string; key: string; settings: unknown; seconds: number; finishedAt: string }

export interface StageSpec<T> {
  name: string; // shown in logs
  /** where the stage stands in its pipeline, e.g. "stage 3/9" (shown before the name) */
  label?: string;
  dir: string; // the folder the stage owns
  settings: unknown; // everything that decides its output (including the keys of its inputs)
  /** runs the stage; `partial` is true when the folder holds an unfinished attempt with the same key */
  run: (partial: boolean) => Promise<T>;
  /** reads a finished stage's result back (when skipped) */
  load: () => T;
}

export interface StageOutcome<T> { result: T; key: string; skipped: boolean; seconds: number }

/** Runs a stage unless an identical finished one is on disk. */
export async function runStage<T>(s: StageSpec<T>, log: (line: string) => void): Promise<StageOutcome<T>> {
  const key = configHash(s.settings);
  const recordFile = `${s.dir}.stage.json`;
  const pendingFile = `${s.dir}.pending.json`;
  const done = readRecord(recordFile);
  const tag = s.label ? `${s.label}: ${s.name}` : s.name;
  if (done && done.key === key) {
    log(`${tag}: done earlier (${done.seconds.toFixed(0)} s), skipped`);
    return { result: s.load(), key, skipped: true, seconds: done.seconds };
  }
  let partial = false;
  if (fs.existsSync(s.dir)) {
    const pending = readRecord(pendingFile);
    if (!done && pending && pending.key === key) {
      partial = true;
      log(`${tag}: continuing an unfinished attempt`);
    } else {
      log(`${tag}: ${done ? 'settings changed' : 'unknown contents'}, starting again`);
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  } else {
    log(tag); // a new stage says that it starts, counted ("stage i/n") or not
  }
  fs.rmSync(recordFile, { force: true });
  fs.mkdirSync(path.dirname(s.dir), { recursive: true });
  const t0 = Date.now();
  writeFileAtomic(pendingFile, JSON.stringify({ name: s.name, key, settings: s.settings, seconds: 0, finishedAt: '' }, null, 2) + '\n');
  const result = await s.run(partial);
  const seconds = (Date.now() - t0) / 1000;
  const record: StageRecord = { name: s.name, key, settings: s.settings, seconds, finishedAt: new Date().toISOString() };
  writeFileAtomic(recordFile, JSON.stringify(record, null, 2) + '\n');
  fs.rmSync(pendingFile, { force: true });
  return { result, key, skipped: false, seconds };
}

function readRecord(file: string): StageRecord | null {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as StageRecord;
    return typeof r.key === 'string' ? r : null;
  } catch {
    return null;
  }
}
