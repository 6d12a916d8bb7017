// Peers for benchmarks: run a Python snippet (numpy / PyTorch) with Debian's /usr/bin/python3 and
// read back one JSON value. Optional by design: longctx never needs Python; when it is missing or the
// snippet fails, callers get null and report "peer unavailable" (peerError() says why).
//
// Protocol: the script is fed on stdin (`python3 -`); it prints its result as JSON on the last
// non-empty line of stdout (anything printed before is ignored). LONGCTX_PYTHON overrides the
// interpreter path.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const DEFAULT_PYTHON = '/usr/bin/python3';

let lastError: string | null = null;
let availability: { python: boolean; torch: boolean; numpy: boolean } | null = null;

/** The interpreter we would use, or null when there is none. */
export function pythonPath(): string | null {
  const p = process.env.LONGCTX_PYTHON || DEFAULT_PYTHON;
  return existsSync(p) ? p : null;
}

/** Why the last runPythonPeer() returned null (null after a success). */
export function peerError(): string | null {
  return lastError;
}

/** process.env with `env` applied: a string sets a variable, undefined removes it. */
function childEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/**
 * Runs `script` with python3 (env: process.env with `env` applied) and returns the JSON value printed
 * on the last non-empty stdout line, or null when python3 is absent, the script fails or times out,
 * or its output is not JSON.
 */
export function runPythonPeer(script: string, env: Record<string, string | undefined> = {}, timeoutMs = 600_000): unknown | null {
  const py = pythonPath();
  if (!py) {
    lastError = `peer unavailable: ${process.env.LONGCTX_PYTHON || DEFAULT_PYTHON} not found`;
    return null;
  }
  const r = spawnSync(py, ['-'], {
    input: script,
    env: childEnv(env),
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : `exit ${r.status ?? r.signal}`;
    const tail = (r.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    lastError = `peer failed (${why})${tail ? `: ${tail}` : ''}`;
    return null;
  }
  const lines = (r.stdout ?? '').trim().split('\n').filter((l) => l.trim() !== '');
  const last = lines[lines.length - 1];
  if (last === undefined) {
    lastError = 'peer printed nothing';
    return null;
  }
  try {
    const value: unknown = JSON.parse(last);
    lastError = null;
    return value;
  } catch {
    lastError = `peer output is not JSON: ${last.slice(0, 200)}`;
    return null;
  }
}

/** Which peers this machine can run: the modules are found, not imported (cheap; probed once per process). */
export function peerAvailable(): { python: boolean; torch: boolean; numpy: boolean } {
  if (availability) return availability;
  if (!pythonPath()) {
    availability = { python: false, torch: false, numpy: false };
    return availability;
  }
  const probe = runPythonPeer(`
import importlib.util, json
print(json.dumps({m: importlib.util.find_spec(m) is not None for m in ("numpy", "torch")}))
`, {}, 60_000) as { numpy?: boolean; torch?: boolean } | null;
  availability = { python: probe !== null, numpy: probe?.numpy === true, torch: probe?.torch === true };
  return availability;
}
