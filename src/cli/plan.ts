// `longctx plan`: what a run at scale costs before it is started: FLOPs (both attention counts),
// time at a stated MFU on a GPU fleet, memory per GPU for each parallel layout and the one to use;
// and the paper's §4.4 FLOPs column recomputed, which says how the paper counted.

import type { Command } from 'commander';
import { PRESETS, presetConfig, type LlamaConfig } from '../model/config.js';
import { readModelConfig } from '../io/hf.js';
import { parseSchedule } from '../train/curriculum.js';
import { matmulParameters } from '../model/estimate.js';
import { GPUS, USABLE_MEMORY, curriculumCheck, parseGpus, planLayouts, scheduleFlops, type LayoutMemory } from '../model/scale-plan.js';
import { floatArg, intArg } from './args.js';

interface PlanFlags { model: string; seqLen?: number; schedule?: string; tokens: number; gpus: string; mfu: number; json: boolean }

const gb = (b: number): string => `${(b / 1e9).toFixed(1)} GB`;

function modelOf(spec: string): LlamaConfig {
  if (spec in PRESETS) return presetConfig(spec);
  return readModelConfig(spec); // a model folder (config.json); errors name it
}

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('plan a run at scale before paying for it: FLOPs, time at an MFU, memory per GPU for data / tensor / context-parallel layouts, the layout to use; and the paper\'s §4.4 FLOPs column recomputed')
    .requiredOption('--model <name|dir>', `a preset (${Object.keys(PRESETS).join(', ')}) or a model folder`)
    .option('--seq-len <n>', 'training sequence length', intArg('--seq-len', 1))
    .option('--schedule <list>', 'length curriculum LENGTH:SHARE,... (e.g. 4096:0.8,32768:0.2) instead of --seq-len')
    .requiredOption('--tokens <n>', 'training tokens, e.g. 400e9', floatArg('--tokens', 1))
    .option('--gpus <COUNTxKIND>', `the fleet, KIND one of ${Object.keys(GPUS).join(', ')}`, '8xH100')
    .option('--mfu <x>', 'model FLOPs utilisation to assume (0..1)', floatArg('--mfu', 0), 0.4)
    .option('--json', 'print the plan as JSON', false)
    .action((f: PlanFlags) => {
      const cfg = modelOf(f.model);
      if (f.seqLen !== undefined && f.schedule) throw new Error('give either --seq-len or --schedule, not both');
      const schedule = f.schedule ? parseSchedule(f.schedule) : [{ seqLen: f.seqLen ?? cfg.max_position_embeddings, share: 1 }];
      if (!(f.mfu > 0 && f.mfu <= 1)) throw new Error(`--mfu must be in (0, 1], got ${f.mfu}`);
      const { count, kind } = parseGpus(f.gpus);
      const gpu = GPUS[kind]!;
      const full = scheduleFlops(cfg, schedule, f.tokens, 'full'), causal = scheduleFlops(cfg, schedule, f.tokens, 'causal');
      const seconds = full / (count * gpu.bf16Flops * f.mfu);
      const T = Math.max(...schedule.map((e) => e.seqLen));
      const layouts = planLayouts(cfg, T, count, gpu.memoryBytes);
      const paper = curriculumCheck(cfg, 4096, 32768, 400e9);
      if (f.json) {
        process.stdout.write(JSON.stringify({ model: f.model, matmulParameters: matmulParameters(cfg), schedule, tokens: f.tokens, flops: { full, causal }, gpus: { count, kind, ...gpu }, mfu: f.mfu, seconds, longest: T, layouts, paperCurriculum: paper }, null, 2) + '\n');
        return;
      }
      const N = matmulParameters(cfg);
      const out: string[] = [];
      out.push(`model      ${f.model}: ${(N / 1e9).toFixed(2)}B parameters in matmuls, L=${cfg.num_hidden_layers} C=${cfg.hidden_size} V=${cfg.vocab_size}`);
      out.push(`schedule   ${schedule.map((e) => `${e.seqLen}:${e.share}`).join(', ')} over ${f.tokens.toExponential(3)} tokens`);
      out.push(`FLOPs      ${full.toExponential(3)} counting attention in full (6N + 12 L T C per token; the paper's §4.4 convention), ${causal.toExponential(3)} causal (6N + 6 L T C; \`info\`'s)`);
      out.push(`time       ${(seconds / 86400).toFixed(1)} days on ${count} x ${kind} (${(gpu.bf16Flops / 1e12).toFixed(0)} TFLOPS bf16 each) at ${(100 * f.mfu).toFixed(0)}% MFU (full count)`);
      out.push(`memory     per GPU at length ${T}, one sequence per micro-batch, bf16 with fp32 master weights and AdamW moments (16 bytes/parameter) fully sharded over data x context ranks; usable ${(100 * USABLE_MEMORY).toFixed(0)}% of ${gb(gpu.memoryBytes)}`);
      const row = (l: LayoutMemory): string => `  dp ${String(l.dp).padStart(4)}  tp ${l.tp}  cp ${String(l.cp).padStart(2)}  ${l.recompute ? 'recompute' : 'keep acts'}  states ${gb(l.states).padStart(8)}  activations ${gb(l.activations).padStart(8)}  logits ${gb(l.logits).padStart(7)}  total ${gb(l.total).padStart(8)}  ${l.fits ? 'fits' : '-'}`;
      for (const l of layouts.all) out.push(row(l));
      out.push(layouts.best ? `layout     dp ${layouts.best.dp} x tp ${layouts.best.tp} x cp ${layouts.best.cp}${layouts.best.recompute ? ' with full activation recomputation' : ''}: ${gb(layouts.best.total)} per GPU` : `layout     none fits on ${count} x ${kind}: more GPUs, a shorter sequence or a bigger GPU`);
      out.push(`§4.4 check the paper's curriculum FLOPs relative to 32k from scratch (this model, 4k -> 32k, 400B tokens): ${paper.map((p) => `@${100 * p.share}% paper ${p.paper.toFixed(3)}, full ${p.full.toFixed(3)}, causal ${p.causal.toFixed(3)}`).join('; ')}`);
      process.stdout.write(out.join('\n') + '\n');
    });
}
