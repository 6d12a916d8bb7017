// Running the built `longctx` bin as a user would, for tests of the command line.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');

export interface BinResult { code: number; stdout: string; stderr: string }

export function longctx(...args: string[]): BinResult {
  return longctxEnv({}, ...args);
}

/** The bin with these environment variables set over this process's. */
export function longctxEnv(env: Record<string, string>, ...args: string[]): BinResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, LONGCTX_DEBUG: '', ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The bin without blocking this process (for tests whose server lives in this process). */
export function longctxAsync(...args: string[]): Promise<BinResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LONGCTX_DEBUG: '' } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (c) => { stdout += c; });
    p.stderr.on('data', (c) => { stderr += c; });
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Exit code 1 and exactly one stderr line, `longctx: ...`, matching pattern. */
export function assertOneLineError(r: BinResult, pattern: RegExp): void {
  assert.equal(r.code, 1, `exit code 1 expected, stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^longctx: /);
  assert.match(lines[0]!, pattern);
}
