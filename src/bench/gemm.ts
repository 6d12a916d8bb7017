// GEMM benchmark: GFLOPS of the native sgemm (2*M*N*K / median seconds over the repeats, after
// warm-up) at square sizes and at the shapes a training step runs, beside numpy's matmul on the same
// shapes and transposes (OpenBLAS through Debian's python3) measured in the same sitting, shape by
// shape and interleaved (ours, peer, ours, peer: `rounds` blocks of `repeats` calls each), so both
// see the same machine load; medians over all timed calls. Figures only; never pass/fail.

import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Precision } from '../kernels/backend.js';
import { loadNativeAddon, nativeLoadError, whyUnavailable, type Isa } from '../kernels/native.js';
import { median } from './median.js';
import { peerAvailable, peerError, runPythonPeer } from './peer.js';

export type GemmTrans = 'NN' | 'NT' | 'TN' | 'TT';
/** [M, N, K] (NN) or [M, N, K, trans]: C (M, N) = op(A) (M, K) @ op(B) (K, N). */
export type GemmShape = [number, number, number] | [number, number, number, GemmTrans];

export interface GemmCase { M: number; N: number; K: number; trans: GemmTrans; label: string }

export interface GemmBenchRow {
  shape: string; // 'M,N,K'
  trans: GemmTrans;
  label: string;
  ours: number; // GFLOPS, in the result's precision
  oursFp32: number | null; // GFLOPS of our fp32 product in the same run (bf16 runs), else null
  peer: number | null; // GFLOPS (OpenBLAS sgemm: float32 whatever our precision)
  ratio: number | null; // ours / peer
  oursMs: number; // median milliseconds per call
  peerMs: number | null;
}

export interface GemmPeerProbe { coretype: string; core: string | null; gflops: number | null }

export interface GemmBenchResult {
  kernel: string;
  precision: Precision; // bf16: operands rounded to bfloat16, float32 sums (vdpbf16ps on the avx512bf16 build)
  threads: number;
  cpu: string;
  repeats: number; // timed calls per round
  rounds: number;
  peerName: string | null; // e.g. 'numpy 1.24.2 + OpenBLAS 0.3.21'
  peerCore: string | null; // OpenBLAS kernel core in use, e.g. 'Haswell'
  peerCoretype: string | null; // OPENBLAS_CORETYPE we ran it with ('auto' = unset)
  peerProbe: GemmPeerProbe[]; // each OPENBLAS_CORETYPE tried at 1024^3 NN; the best becomes the peer
  peerNote: string | null; // why there is no peer, when there is none
  rows: GemmBenchRow[];
}

// Model shapes: B*T = 4096 rows, C = 512, F = 1376, V = 8192 (weights row-major [out, in], HF layout).
// Forward y = x @ W^T is NT; weight gradient dW = dy^T @ x is TN; input gradient dx = dy @ W is NN.
const BT = 4096, C = 512, F = 1376, V = 8192;
export const DEFAULT_GEMM_CASES: GemmCase[] = [
  { M: 256, N: 256, K: 256, trans: 'NN', label: 'square' },
  { M: 512, N: 512, K: 512, trans: 'NN', label: 'square' },
  { M: 1024, N: 1024, K: 1024, trans: 'NN', label: 'square' },
  { M: 1024, N: 1024, K: 1024, trans: 'NT', label: 'square' },
  { M: 2048, N: 2048, K: 2048, trans: 'NN', label: 'square' },
  { M: BT, N: C, K: C, trans: 'NT', label: 'q proj fwd (x @ Wq^T)' },
  { M: BT, N: F, K: C, trans: 'NT', label: 'gate fwd (x @ Wg^T)' },
  { M: BT, N: C, K: F, trans: 'NT', label: 'down fwd (h @ Wd^T)' },
  { M: BT, N: V, K: C, trans: 'NT', label: 'LM head fwd (x @ Wlm^T)' },
  { M: C, N: C, K: BT, trans: 'TN', label: 'q proj dW (dy^T @ x)' },
  { M: F, N: C, K: BT, trans: 'TN', label: 'gate dW (dy^T @ x)' },
  { M: C, N: F, K: BT, trans: 'TN', label: 'down dW (dy^T @ h)' },
  { M: BT, N: C, K: F, trans: 'NN', label: 'gate dx (dy @ Wg)' },
  { M: BT, N: C, K: V, trans: 'NN', label: 'LM head dx (dy @ Wlm)' },
];

// Warm-up: at least WARMUP calls and WARMUP_S seconds (the first calls after allocating pay for page
// faults, a cold worker thread and, on this 2-core VM, V8's background threads still running).
const WARMUP = 2;
const WARMUP_S = 0.25;

function fillRandom(a: Float32Array, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    a[i] = s / 2147483648 - 1; // uniform [-1, 1)
  }
  return a;
}

function cpuFlags(): Set<string> {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    return new Set((line?.split(':')[1] ?? '').trim().split(/\s+/));
  } catch {
    return new Set();
  }
}

// OPENBLAS_CORETYPE values worth trying here: autodetection (the variable unset), the
// environment's own value if it sets one (an environment can hold OpenBLAS to an older kernel than
// the CPU runs: the best of all is the peer, not whatever the shell says), the AVX2 kernels, and the
// AVX-512 ones only where the CPU has AVX-512 (forcing them elsewhere would crash).
function coretypeCandidates(): string[] {
  const own = process.env.OPENBLAS_CORETYPE;
  const flags = cpuFlags();
  const out = ['auto', ...(own ? [own] : [])];
  if (flags.has('avx2') && flags.has('fma')) out.push('ZEN', 'HASWELL');
  if (flags.has('avx512f') && flags.has('avx512bw') && flags.has('avx512vl') && flags.has('avx512dq')) out.push('SKYLAKEX');
  if (flags.has('avx512_bf16')) out.push('COOPERLAKE', 'SAPPHIRERAPIDS');
  return out.filter((c, i) => out.findIndex((d) => d.toLowerCase() === c.toLowerCase()) === i);
}

// One Python process times a list of cases with numpy.matmul (into a preallocated output, operands
// transposed as views so OpenBLAS gets the transpose flags, as our sgemm does) and reports which
// OpenBLAS core it runs.
const PEER_SCRIPT = String.raw`
import ctypes, json, os, time
import numpy as np

args = json.loads(os.environ["LONGCTX_GEMM_PEER"])

def blas_info():
    info = {"numpy": np.__version__, "core": None, "config": None, "lib": None}
    try:
        libs = []
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[-1].startswith("/") and "blas" in parts[-1].lower() and parts[-1] not in libs:
                    libs.append(parts[-1])
        for p in libs:
            try:
                lib = ctypes.CDLL(p)
                corename, config = lib.openblas_get_corename, lib.openblas_get_config
            except (OSError, AttributeError):
                continue
            corename.restype = ctypes.c_char_p
            config.restype = ctypes.c_char_p
            info.update(core=corename().decode(), config=config().decode(), lib=p)
            break
        if info["lib"] is None and libs:
            info["lib"] = libs[0]
    except Exception:
        pass
    return info

rng = np.random.default_rng(0)
times = []
for c in args["cases"]:
    M, N, K, tr = c["M"], c["N"], c["K"], c["trans"]
    A = rng.standard_normal((K, M) if tr[0] == "T" else (M, K), dtype=np.float32)
    B = rng.standard_normal((N, K) if tr[1] == "T" else (K, N), dtype=np.float32)
    opA = A.T if tr[0] == "T" else A
    opB = B.T if tr[1] == "T" else B
    out = np.empty((M, N), dtype=np.float32)
    w0 = time.perf_counter()
    i = 0
    while i < 100 and (i < args["warmup"] or time.perf_counter() - w0 < args["warmup_s"]):
        np.matmul(opA, opB, out=out)
        i += 1
    ts = []
    for _ in range(args["repeats"]):
        t = time.perf_counter()
        np.matmul(opA, opB, out=out)
        ts.append(time.perf_counter() - t)
    times.append(ts)
print(json.dumps({"times": times, **blas_info()}))
`;

interface PeerReply { times: number[][]; numpy: string; core: string | null; config: string | null; lib: string | null }

function runPeer(cases: GemmCase[], repeats: number, threads: number, coretype: string): PeerReply | null {
  const env: Record<string, string | undefined> = {
    LONGCTX_GEMM_PEER: JSON.stringify({ cases, repeats, warmup: WARMUP, warmup_s: WARMUP_S }),
    OPENBLAS_NUM_THREADS: String(threads),
    OMP_NUM_THREADS: String(threads),
  };
  env.OPENBLAS_CORETYPE = coretype === 'auto' ? undefined : coretype;
  const r = runPythonPeer(PEER_SCRIPT, env, 600_000) as PeerReply | null;
  return r && Array.isArray(r.times) && r.times.length === cases.length ? r : null;
}

function toCase(s: GemmShape): GemmCase {
  const [M, N, K, trans = 'NN'] = s;
  for (const [name, v] of [['M', M], ['N', N], ['K', K]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`gemm bench: ${name} must be a positive integer, got ${v}`);
  }
  if (!['NN', 'NT', 'TN', 'TT'].includes(trans)) throw new RangeError(`gemm bench: trans must be NN, NT, TN or TT, got ${trans}`);
  return { M, N, K, trans, label: '' };
}

export async function benchGemm(opts: {
  shapes?: GemmShape[];
  repeats?: number;
  rounds?: number;
  peer?: boolean;
  /** the build to time (default: the fastest this CPU runs) */
  isa?: Isa;
  /** bf16: time our bf16 product, and our fp32 one beside it (default fp32) */
  precision?: Precision;
  onProgress?: (msg: string) => void;
} = {}): Promise<GemmBenchResult> {
  const addon = loadNativeAddon(opts.isa);
  if (!addon) throw new Error(opts.isa ? `gemm bench: ${whyUnavailable(opts.isa)}` : `gemm bench needs the native addon: ${nativeLoadError() ?? 'unavailable'}`);
  const repeats = opts.repeats ?? 10;
  if (!Number.isInteger(repeats) || repeats < 1) throw new RangeError(`gemm bench: repeats must be a positive integer, got ${repeats}`);
  const rounds = opts.rounds ?? 3;
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`gemm bench: rounds must be a positive integer, got ${rounds}`);
  const cases = opts.shapes ? opts.shapes.map(toCase) : DEFAULT_GEMM_CASES;
  const precision = opts.precision ?? 'fp32';
  const bf16 = precision === 'bf16';
  const progress = opts.onProgress ?? (() => {});
  const info = addon.info();

  // Peer: pick the fastest OPENBLAS_CORETYPE at 1024^3.
  let peerNote: string | null = null;
  let peerCoretype: string | null = null;
  let peerName: string | null = null;
  let peerCore: string | null = null;
  const peerProbe: GemmPeerProbe[] = [];
  if (opts.peer !== false) {
    const avail = peerAvailable();
    if (!avail.python) peerNote = 'peer unavailable: no python3';
    else if (!avail.numpy) peerNote = 'peer unavailable: python3 has no numpy';
    else {
      const probeCase: GemmCase = { M: 1024, N: 1024, K: 1024, trans: 'NN', label: 'probe' };
      let best = 0;
      for (const ct of coretypeCandidates()) {
        const r = runPeer([probeCase], 5, info.threads, ct);
        const gflops = r ? (2 * 1024 ** 3) / median(r.times[0]!) / 1e9 : null;
        peerProbe.push({ coretype: ct, core: r?.core ?? null, gflops });
        progress(`peer probe OPENBLAS_CORETYPE=${ct}: ${r ? `${r.core ?? '?'} core, ${gflops!.toFixed(1)} GFLOPS at 1024^3` : peerError()}`);
        if (r && gflops! > best) {
          best = gflops!;
          peerCoretype = ct;
          peerCore = r.core;
          peerName = `numpy ${r.numpy}` + (r.config ? ` + ${r.config.split(' ').slice(0, 2).join(' ')}` : r.lib ? ` + ${r.lib}` : '');
        }
      }
      if (peerCoretype === null) peerNote = `peer unavailable: ${peerError() ?? 'numpy failed'}`;
    }
    if (peerNote) progress(peerNote);
  }

  const rows: GemmBenchRow[] = [];
  for (const c of cases) {
    const { M, N, K, trans } = c;
    const ta = trans[0] === 'T', tb = trans[1] === 'T';
    const A = fillRandom(new Float32Array(M * K), 1); // (M, K), or (K, M) when ta
    const B = fillRandom(new Float32Array(K * N), 2); // (K, N), or (N, K) when tb
    const Cm = new Float32Array(M * N); // (M, N)
    const lda = ta ? M : K, ldb = tb ? K : N;
    const call = (b: boolean) => addon.sgemm(ta, tb, M, N, K, 1, A, lda, B, ldb, 0, Cm, N, b);
    const warm = (b: boolean, minCalls: number, seconds: number) => {
      const w0 = process.hrtime.bigint();
      for (let i = 0; i < 100 && (i < minCalls || Number(process.hrtime.bigint() - w0) / 1e9 < seconds); i++) call(b);
    };
    // bf16 runs time the fp32 product too, alternating with the bf16 one round by round
    const variants = bf16 ? [true, false] : [false];
    const ours: number[] = [], oursFp32: number[] = [], peer: number[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const b of variants) {
        if (round === 0) warm(b, WARMUP, WARMUP_S);
        else warm(b, 1, WARMUP_S / 2); // again after the peer's process
        for (let i = 0; i < repeats; i++) {
          const t0 = process.hrtime.bigint();
          call(b);
          (b === bf16 ? ours : oursFp32).push(Number(process.hrtime.bigint() - t0) / 1e9);
        }
      }
      if (peerCoretype !== null) {
        const r = runPeer([c], repeats, info.threads, peerCoretype);
        if (r) peer.push(...r.times[0]!);
      }
    }
    const oursS = median(ours);
    const peerS = peer.length ? median(peer) : null;
    const flop = 2 * M * N * K;
    const row: GemmBenchRow = {
      shape: `${M},${N},${K}`, trans, label: c.label,
      ours: flop / oursS / 1e9,
      oursFp32: oursFp32.length ? flop / median(oursFp32) / 1e9 : null,
      peer: peerS ? flop / peerS / 1e9 : null,
      ratio: peerS ? peerS / oursS : null,
      oursMs: oursS * 1e3,
      peerMs: peerS ? peerS * 1e3 : null,
    };
    rows.push(row);
    progress(`${row.shape} ${trans}${c.label ? ` (${c.label})` : ''}: ours ${row.ours.toFixed(1)} GFLOPS` +
      (row.oursFp32 !== null ? ` (fp32 ${row.oursFp32.toFixed(1)})` : '') +
      (row.peer !== null ? `, peer ${row.peer.toFixed(1)}, ratio ${row.ratio!.toFixed(2)}` : ''));
    await new Promise((r) => setImmediate(r)); // let a progress bar or signal handler run
  }

  return {
    kernel: info.gemmKernel,
    precision,
    threads: info.threads,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    repeats, rounds,
    peerName, peerCore, peerCoretype, peerProbe, peerNote,
    rows,
  };
}
