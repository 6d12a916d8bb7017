// `longctx bench`: performance figures (never pass/fail). `bench train --config FILE` times training
// steps of a shipped bench/configs model; `bench gemm` times the native matrix multiply. Both can measure
// a peer (PyTorch / OpenBLAS through Debian's python3) in the same run for a ratio.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { NATIVE_ISAS, type Isa } from '../kernels/native.js';
import type { Precision } from '../kernels/backend.js';
import { benchTrain, benchTrainPair, readBenchConfig, type BenchConfig } from '../bench/train.js';
import { runPythonPeer } from '../bench/peer.js';
import { benchGemm, type GemmBenchResult, type GemmShape } from '../bench/gemm.js';
import { benchDecode, decodeInputs, kvBytesAtMedianStep } from '../bench/decode.js';
import { llamaCppDecode } from '../bench/decode-peer.js';
import { copyBandwidthThreads } from '../bench/copy.js';
import { intArg, floatArg, bytes, kernelsFlag, kernelsOption, nativeBuildFlag, precisionOption } from './args.js';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const PEER_SCRIPT = path.join(PACKAGE_ROOT, 'bench/peers/torch_train.py');
/** the benchmark configs that ship with the package (bench/configs/NAME.json) */
const BENCH_CONFIGS = path.join(PACKAGE_ROOT, 'bench/configs');

/** --config small (a shipped config) or a path to a config file: the config and its name. */
function benchConfig(v: string): { bc: BenchConfig; name: string } {
  const file = benchConfigPath(v);
  return { bc: readBenchConfig(file), name: path.basename(file, '.json') };
}

function benchConfigPath(v: string): string {
  if (/^[a-z0-9-]+$/i.test(v) && !existsSync(v)) {
    const shipped = path.join(BENCH_CONFIGS, `${v}.json`);
    if (!existsSync(shipped)) throw new Error(`--config ${v}: no such shipped config (${readdirSync(BENCH_CONFIGS).map((f) => f.replace(/\.json$/, '')).join(', ')}) and no such file`);
    return shipped;
  }
  return v;
}

interface GemmOptions { shape?: string[]; repeats: number; rounds: number; peer: boolean; json: boolean; isa?: Isa; precision: Precision }

/** '1024,1024,1024' or '4096,512,512,NT' -> a GemmShape; the error names the flag. */
function parseShape(s: string): GemmShape {
  const parts = s.split(',').map((x) => x.trim());
  const dims = parts.slice(0, 3).map(Number);
  const trans = (parts[3] ?? 'NN').toUpperCase();
  if (parts.length < 3 || parts.length > 4 || dims.some((d) => !Number.isInteger(d) || d < 1) || !['NN', 'NT', 'TN', 'TT'].includes(trans)) {
    throw new Error(`--shape: expected M,N,K[,NN|NT|TN|TT] with positive integers, got '${s}'`);
  }
  return [dims[0]!, dims[1]!, dims[2]!, trans as 'NN'];
}

/** The result as a markdown table, ready for BENCHMARKS.md. */
export function gemmMarkdown(r: GemmBenchResult): string {
  const peer = r.peerName ? `${r.peerName} (${r.peerCore ?? '?'} kernel, OPENBLAS_CORETYPE=${r.peerCoretype})` : (r.peerNote ?? 'no peer');
  const head = `CPU: ${r.cpu}; ours: ${r.kernel} kernel, ${r.threads} threads; peer: ${peer}; median of ${r.rounds} x ${r.repeats} calls each, interleaved.`;
  if (r.precision === 'bf16') {
    return [
      head + ' Ours in bf16 (operands rounded to bfloat16, float32 sums) and in fp32, alternated; the peer is float32 sgemm.',
      '',
      '| M,N,K | op | shape | ours bf16 GFLOPS | ours fp32 GFLOPS | bf16 / fp32 | peer GFLOPS | bf16 / peer |',
      '|---|---|---|---:|---:|---:|---:|---:|',
      ...r.rows.map((x) => `| ${x.shape} | ${x.trans} | ${x.label} | ${x.ours.toFixed(1)} | ${x.oursFp32?.toFixed(1) ?? '-'} | ` +
        `${x.oursFp32 ? (x.ours / x.oursFp32).toFixed(2) : '-'} | ${x.peer?.toFixed(1) ?? '-'} | ${x.ratio?.toFixed(2) ?? '-'} |`),
    ].join('\n') + '\n';
  }
  const lines = [
    head,
    '',
    '| M,N,K | op | shape | ours GFLOPS | peer GFLOPS | ours / peer |',
    '|---|---|---|---:|---:|---:|',
    ...r.rows.map((x) => `| ${x.shape} | ${x.trans} | ${x.label} | ${x.ours.toFixed(1)} | ${x.peer?.toFixed(1) ?? '-'} | ${x.ratio?.toFixed(2) ?? '-'} |`),
  ];
  return lines.join('\n') + '\n';
}

interface TrainOptions { config: string; steps: number; warmup: number; peer: boolean; peakGflops?: number; json: boolean; kernels?: string; precision: string }

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('performance benchmarks: figures, never pass/fail');
  bench
    .command('gemm')
    .description('GFLOPS of the native sgemm at square and model shapes, beside numpy/OpenBLAS measured in the same run')
    .option('--shape <M,N,K[,op]>', 'a shape to time (repeatable; op is NN, NT, TN or TT); default: square sizes and a training step\'s shapes', (v: string, acc: string[] = []) => [...acc, v])
    .option('--repeats <n>', 'timed calls per round', intArg('--repeats', 1), 10)
    .option('--rounds <n>', 'rounds, alternating ours and the peer', intArg('--rounds', 1), 3)
    .option('--no-peer', 'do not run numpy/OpenBLAS')
    .option('--isa <name>', `the build to time: ${NATIVE_ISAS.join(', ')} (default: $LONGCTX_ISA or $LONGCTX_BACKEND when they name one, else the fastest this CPU runs)`, (v: string) => {
      if (!(NATIVE_ISAS as readonly string[]).includes(v)) throw new InvalidArgumentError(`--isa must be one of ${NATIVE_ISAS.join(', ')}, got "${v}"`);
      return v as Isa;
    })
    .option('--json', 'print only the JSON result', false)
    .addOption(precisionOption('about 1.9x the fp32 product').default('fp32', 'fp32; with bf16 our fp32 product is timed too, alternated, for the speed-up'))
    .action(async (o: GemmOptions) => {
      const shapes = o.shape?.map(parseShape);
      const isa = nativeBuildFlag(o.isa);
      const r = await benchGemm({
        ...(shapes ? { shapes } : {}), repeats: o.repeats, rounds: o.rounds, peer: o.peer, ...(isa ? { isa } : {}), precision: o.precision,
        onProgress: (m) => { if (!o.json) process.stderr.write(`  ${m}\n`); },
      });
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : gemmMarkdown(r));
    });
  bench
    .command('train')
    .description('time training steps (forward, backward, AdamW) of a bench config: tokens/s, GFLOPS, MFU, peak RSS')
    .requiredOption('--config <name|file>', 'bench config: small, medium, long4k, long16k (shipped in bench/configs/), or a file {model: <HF config.json fields>, seq_len, batch_size}')
    .option('--steps <n>', 'timed steps (the median is reported)', intArg('--steps', 1), 5)
    .option('--warmup <n>', 'untimed steps first', intArg('--warmup', 0), 1)
    .option('--peer', 'also time the same step in PyTorch (needs /usr/bin/python3 with torch)', false)
    .option('--peak-gflops <x>', 'fp32 ceiling of this machine for MFU (e.g. OpenBLAS sgemm GFLOPS measured by `bench gemm`)', floatArg('--peak-gflops', 0))
    .option('--json', 'print only the JSON result', false)
    .addOption(kernelsOption())
    .addOption(precisionOption().default('fp32', 'fp32; with bf16 an fp32 model is timed too, the two alternated step by step, for the speed-up (both held at once: twice the memory)'))
    .action((o: TrainOptions) => {
      const { bc, name } = benchConfig(o.config);
      const be = kernelsFlag(o);
      const say = (p: string, i: number, s: number) => { if (!o.json) process.stderr.write(`  ${p} ${i < 0 ? 'warm-up' : `step ${i + 1}/${o.steps}`}: ${s.toFixed(3)} s\n`); };
      const common = { steps: o.steps, warmup: o.warmup, peakGflops: o.peakGflops ?? null };
      // bf16 is measured beside fp32 on the same kernels, same initial weights and batches, their
      // steps alternated: the speed-up and the two losses after the same steps come from one sitting.
      const [fp32, result] = be.precision === 'bf16'
        ? benchTrainPair(name, bc, be.withPrecision('fp32'), be, { ...common, onStepOf: (w, i, s) => say(w ? 'bf16' : 'fp32', i, s) })
        : [null, benchTrain(name, bc, be, { ...common, onStep: (i, s) => say(be.precision, i, s) })];
      let peer: unknown = null;
      if (o.peer) {
        if (!o.json) process.stderr.write('  running the PyTorch peer...\n');
        peer = runPythonPeer(readFileSync(PEER_SCRIPT, 'utf8'), {
          LONGCTX_PEER_CONFIG: JSON.stringify({ model: bc.model, seq_len: bc.seq_len, batch_size: bc.batch_size, steps: o.steps, warmup: o.warmup }),
        }, 3_600_000);
      }
      const peerTps = (peer as { tokens_per_second?: number } | null)?.tokens_per_second;
      const out = {
        ...result,
        ...(fp32 ? { fp32, speedup_vs_fp32: result.tokens_per_second / fp32.tokens_per_second } : {}),
        peer, ratio_to_peer: peerTps ? result.tokens_per_second / peerTps : null,
      };
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      if (o.json) return;
      if (fp32) {
        process.stderr.write(`${name}: fp32 ${fp32.tokens_per_second.toFixed(0)} tokens/s` +
          (fp32.gemm_gflops ? `, ${fp32.achieved_gflops.toFixed(1)} GFLOPS = ${(100 * fp32.fraction_of_gemm!).toFixed(0)}% of its fp32 GEMM's ${fp32.gemm_gflops.toFixed(0)} at 1024^3` : '') +
          ` (loss after ${o.warmup + o.steps} steps ${fp32.loss.toFixed(4)}); bf16 below (loss ${result.loss.toFixed(4)}): ${(result.tokens_per_second / fp32.tokens_per_second).toFixed(2)}x\n`);
      }
      process.stderr.write(`${name}: ${result.precision} ${result.tokens_per_second.toFixed(0)} tokens/s on ${result.backend} (${result.isa}, ${result.threads} threads), ${result.achieved_gflops.toFixed(1)} GFLOPS` +
        (result.gemm_gflops ? ` = ${(100 * result.fraction_of_gemm!).toFixed(0)}% of its ${result.precision} GEMM's ${result.gemm_gflops.toFixed(0)} at 1024^3` : '') +
        `, peak RSS ${bytes(result.peak_rss_bytes)}${fp32 ? ' (both models)' : ''}` +
        (peerTps ? `; PyTorch ${peerTps.toFixed(0)} tokens/s, ratio ${(result.tokens_per_second / peerTps).toFixed(2)}x` : '') + '\n');
    });
  bench
    .command('decode')
    .description('prefill and greedy decode of a bench config\'s model through the KV cache: tokens/s, bytes read per token and their rate against a copy of memory measured in the same run')
    .requiredOption('--config <name|file>', 'bench config: small, medium, long4k, long16k (shipped in bench/configs/), or a file {model: <HF config.json fields>, ...}')
    .option('--prompt <n>', 'prompt tokens (prefilled)', intArg('--prompt', 1), 256)
    .option('--new <n>', 'tokens decoded one at a time (the median step is reported)', intArg('--new', 2), 64)
    .option('--peer', 'also time llama.cpp (node-llama-cpp\'s CPU build) on the same model exported as F32 and F16 GGUF files, same prompt and threads', false)
    .option('--json', 'print only the JSON result', false)
    .addOption(kernelsOption())
    .action(async (o: { config: string; prompt: number; new: number; json: boolean; peer: boolean; kernels?: string }) => {
      const { bc, name } = benchConfig(o.config);
      const cfg = { ...bc.model, max_position_embeddings: Math.max(bc.model.max_position_embeddings, o.prompt + o.new) };
      const be = kernelsFlag(o);
      const inputs = decodeInputs(cfg, be, o.prompt);
      const r0 = benchDecode(name, cfg, be, { prompt: o.prompt, generate: o.new }, inputs);
      // the copy again with as many threads as the decode used: the machine's bandwidth, not one core's
      const copyAll = be.threads > 1 ? await copyBandwidthThreads(be.threads) : r0.copy_gb_per_second;
      const r = { ...r0, copy_threads_gb_per_second: copyAll, fraction_of_threads_copy: r0.decode_gb_per_second / copyAll };
      let peer = null;
      if (o.peer) {
        if (!o.json) process.stderr.write('  running llama.cpp on the same model (F32 and F16 GGUF)...\n');
        const flat = inputs.model.params.flat; // float64 on the reference: the GGUF files hold float32 either way
        peer = await llamaCppDecode(cfg, flat instanceof Float32Array ? flat : Float32Array.from(flat), inputs.tokens, o.new, be.threads, kvBytesAtMedianStep(cfg, o.prompt, o.new));
      }
      process.stdout.write(JSON.stringify({ ...r, decode_step_seconds: o.json ? r.decode_step_seconds : undefined, ...(peer ? { peer } : {}) }, null, 2) + '\n');
      if (!o.json) {
        process.stderr.write(`${name}: prefill ${r.prefill_tokens_per_second.toFixed(0)} tokens/s, decode ${r.decode_tokens_per_second.toFixed(1)} tokens/s on ${r.backend} (${r.isa}, ${r.threads} threads); ` +
          `${bytes(r.bytes_per_token)} read per token = ${r.decode_gb_per_second.toFixed(1)} GB/s, ${(100 * r.fraction_of_read).toFixed(0)}% of a memory read's ${r.read_gb_per_second.toFixed(1)} GB/s (${r.threads} threads); a copy moves ${r.copy_gb_per_second.toFixed(1)} GB/s on one thread, ${r.copy_threads_gb_per_second.toFixed(1)} on ${r.threads}\n`);
        for (const p of peer ?? []) {
          process.stderr.write(`${name}: llama.cpp ${p.type}: prefill ${p.prefill_tokens_per_second.toFixed(0)} tokens/s, decode ${p.decode_tokens_per_second.toFixed(1)} tokens/s (${p.threads} threads), ${p.decode_gb_per_second.toFixed(1)} GB/s; ours / llama.cpp: prefill ${(r.prefill_tokens_per_second / p.prefill_tokens_per_second).toFixed(2)}x, decode ${(r.decode_tokens_per_second / p.decode_tokens_per_second).toFixed(2)}x\n`);
        }
      }
    });
}
