// `longctx info`: parameters, training FLOPs per token and memory by sequence length.

import type { Command } from 'commander';
import { PRESETS, presetConfig, type LlamaConfig } from '../model/config.js';
import { ropeParamsOf } from '../model/config.js';
import { describeRope } from '../model/rope.js';
import { parameterCount } from '../model/params.js';
import { matmulParameters, memoryEstimate, trainingFlopsPerToken } from '../model/estimate.js';
import { checkModelWeights, readModelConfig } from '../io/hf.js';
import { bytes, human, intArg, intListArg, kernelsFlag } from './args.js';
import { supportedIsas } from '../kernels/native.js';
import { describeBackend, type Backend } from '../kernels/backend.js';

interface InfoOptions { preset?: string; seqLens?: number[]; batch: number; json: boolean }

function defaultSeqLens(cfg: LlamaConfig): number[] {
  const top = Math.max(32768, cfg.max_position_embeddings);
  const out: number[] = [];
  for (let t = 256; t <= top; t *= 2) out.push(t);
  return out;
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('parameter count, training FLOPs per token and memory estimates of a model folder or preset')
    .argument('[model]', 'model folder (with config.json)')
    .option('--preset <name>', `a preset instead of a folder: ${Object.keys(PRESETS).join(', ')}`)
    .option('--seq-lens <list>', 'sequence lengths for the tables, comma-separated (default 256 .. max(32768, max_position_embeddings))', intListArg('--seq-lens'))
    .option('--batch <n>', 'sequences per step for the memory estimate', intArg('--batch', 1), 1)
    .option('--json', 'print JSON', false)
    .action((dir: string | undefined, o: InfoOptions) => {
      if (!dir && !o.preset) throw new Error('give a model folder or --preset NAME');
      if (dir && o.preset) throw new Error('give either a model folder or --preset, not both');
      const cfg = dir ? readModelConfig(dir) : presetConfig(o.preset!);
      // Verify the weights against config.json from the safetensors headers (cheap at any size).
      const plan = dir ? checkModelWeights(dir, cfg) : null;
      const P = parameterCount(cfg);
      const embedding = cfg.vocab_size * cfg.hidden_size;
      const lens = o.seqLens ?? defaultSeqLens(cfg);
      const rows = lens.map((T) => ({ T, flopsPerToken: trainingFlopsPerToken(cfg, T), memory: memoryEstimate(cfg, T, o.batch) }));
      // What the commands would compute with when --kernels is absent (LONGCTX_ISA, then
      // LONGCTX_BACKEND, else native when it loads, else ref), and the builds this CPU runs. A
      // forced build this CPU cannot run is reported, not thrown: info is where one looks to find out why.
      let be: Backend | undefined, kernelsError: string | undefined;
      try {
        be = kernelsFlag({});
      } catch (e) {
        kernelsError = (e as Error).message;
      }
      const supported = supportedIsas();
      const kernels = be ? { backend: be.name, isa: be.isa, threads: be.threads, supported } : { error: kernelsError, supported };
      if (o.json) {
        process.stdout.write(JSON.stringify({ source: dir ?? o.preset, kernels, config: cfg, weights: plan && { files: plan.files, dtypes: plan.dtypes, tensors: plan.tensors.length }, parameters: P, nonEmbeddingParameters: P - embedding, matmulParameters: matmulParameters(cfg), rope: describeRope(ropeParamsOf(cfg)), byLength: rows }, null, 2) + '\n');
        return;
      }
      const out: string[] = [];
      out.push(`model        ${dir ?? `preset ${o.preset}`}`);
      out.push(`parameters   ${P.toLocaleString('en-US')} (${human(P)}); without embedding ${human(P - embedding)}; in matmuls ${human(matmulParameters(cfg))}`);
      out.push(`shape        L=${cfg.num_hidden_layers} C=${cfg.hidden_size} F=${cfg.intermediate_size} NH=${cfg.num_attention_heads} NKV=${cfg.num_key_value_heads} HS=${cfg.head_dim} V=${cfg.vocab_size}${cfg.tie_word_embeddings ? ' (tied embeddings)' : ''}`);
      out.push(`context      max_position_embeddings=${cfg.max_position_embeddings}; rope ${describeRope(ropeParamsOf(cfg))}`);
      out.push(`kernels      ${be ? `${describeBackend(be)} by default` : `none by default (${kernelsError})`}; this CPU runs ${supported.length > 0 ? supported.join(', ') : 'no native build'} (--kernels), and ref`);
      out.push(`weights      ${bytes(4 * P)} fp32, ${bytes(2 * P)} bf16${plan ? `; checked: ${plan.tensors.length} tensors (${plan.dtypes.join(', ')}) in ${plan.files.length} file(s) match config.json` : ''}`);
      out.push('');
      out.push(`training FLOPs per token = 6 * matmul params + 6 * L * T * C; memory for batch ${o.batch} (fp32 weights + grads + AdamW + activations)`);
      out.push(`${'T'.padStart(8)}  ${'FLOPs/token'.padStart(12)}  ${'attention %'.padStart(11)}  ${'activations'.padStart(12)}  ${'training'.padStart(12)}  ${'KV cache'.padStart(12)}`);
      for (const r of rows) {
        const attn = (6 * cfg.num_hidden_layers * r.T * cfg.hidden_size) / r.flopsPerToken;
        out.push(`${String(r.T).padStart(8)}  ${r.flopsPerToken.toExponential(3).padStart(12)}  ${(100 * attn).toFixed(1).padStart(10)}%  ${bytes(r.memory.activationBytes).padStart(12)}  ${bytes(r.memory.trainingBytes).padStart(12)}  ${bytes(r.memory.kvCacheBytes).padStart(12)}`);
      }
      process.stdout.write(out.join('\n') + '\n');
    });
}
