// `longctx bench`: performance figures (never pass/fail). `bench train --config FILE` times training
// steps of a ../shared/bench model; `bench gemm` times the native matrix multiply. Both can measure
// a peer (PyTorch / OpenBLAS through Debian's python3) in the same run for a ratio.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { selectBackend } from '../kernels/native.js';
import { benchTrain, readBenchConfig } from '../bench/train.js';
import { runPythonPeer } from '../bench/peer.js';
import { intArg, floatArg, bytes } from './args.js';

const PEER_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bench/peers/torch_train.py');

interface TrainOptions { config: string; steps: number; warmup: number; peer: boolean; peakGflops?: number; json: boolean }

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('performance benchmarks: figures, never pass/fail');
  bench
    .command('train')
    .description('time training steps (forward, backward, AdamW) of a bench config: tokens/s, GFLOPS, MFU, peak RSS')
    .requiredOption('--config <file>', 'bench config: {model: <HF config.json fields>, seq_len, batch_size} (see ../shared/bench/)')
    .option('--steps <n>', 'timed steps (the median is reported)', intArg('--steps', 1), 5)
    .option('--warmup <n>', 'untimed steps first', intArg('--warmup', 0), 1)
    .option('--peer', 'also time the same step in PyTorch (needs /usr/bin/python3 with torch)', false)
    .option('--peak-gflops <x>', 'fp32 ceiling of this machine for MFU (e.g. OpenBLAS sgemm GFLOPS measured by `bench gemm`)', floatArg('--peak-gflops', 0))
    .option('--json', 'print only the JSON result', false)
    .action((o: TrainOptions) => {
      const bc = readBenchConfig(o.config);
      const be = selectBackend();
      const name = path.basename(o.config, '.json');
      const result = benchTrain(name, bc, be, {
        steps: o.steps, warmup: o.warmup, peakGflops: o.peakGflops ?? null,
        onStep: (i, s) => { if (!o.json) process.stderr.write(`  ${i < 0 ? 'warm-up' : `step ${i + 1}/${o.steps}`}: ${s.toFixed(3)} s\n`); },
      });
      let peer: unknown = null;
      if (o.peer) {
        if (!o.json) process.stderr.write('  running the PyTorch peer...\n');
        peer = runPythonPeer(readFileSync(PEER_SCRIPT, 'utf8'), {
          LONGCTX_PEER_CONFIG: JSON.stringify({ model: bc.model, seq_len: bc.seq_len, batch_size: bc.batch_size, steps: o.steps, warmup: o.warmup }),
        }, 3_600_000);
      }
      const peerTps = (peer as { tokens_per_second?: number } | null)?.tokens_per_second;
      const out = { ...result, peer, ratio_to_peer: peerTps ? result.tokens_per_second / peerTps : null };
      if (o.json) {
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return;
      }
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      process.stderr.write(`${name}: ${result.tokens_per_second.toFixed(0)} tokens/s on ${result.backend}, ${result.achieved_gflops.toFixed(1)} GFLOPS, peak RSS ${bytes(result.peak_rss_bytes)}` +
        (peerTps ? `; PyTorch ${peerTps.toFixed(0)} tokens/s, ratio ${(result.tokens_per_second / peerTps).toFixed(2)}x` : '') + '\n');
    });
}
