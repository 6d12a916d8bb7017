// `longctx export gguf MODEL --out FILE`: a model folder as a llama.cpp GGUF file.

import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { exportGguf, GGUF_WEIGHT_TYPES, type GgufWeightType } from '../io/gguf-llama.js';
import { readGgufHeader } from '../io/gguf.js';
import { bytes } from './args.js';
import { resolveModelDir } from '../eval/open.js';

interface ExportGgufFlags { out: string; type?: string; f16: boolean; name?: string; force: boolean; json: boolean }

export function registerExport(program: Command): void {
  const exp = program.command('export').description('convert a model folder to another format (gguf: for llama.cpp)');
  exp
    .command('gguf')
    .description(
      'write a llama.cpp GGUF file: llama.* metadata (RoPE base and scaling included), the tokenizer ' +
        '(tokenizer.ggml.* and the original tokenizer.json), F32 tensors (or --type) with llama.cpp names and q/k ' +
        'permuted to its interleaved RoPE layout. RoPE variants llama.cpp cannot compute (dynamic NTK, ' +
        'LongRoPE, xPos, YaRN with custom attention factor or betas) are refused.',
    )
    .argument('<model>', 'model folder (config.json, model.safetensors, tokenizer.json) or a run folder with model/')
    .requiredOption('--out <file>', 'output .gguf file (written atomically)')
    .option('--type <type>', `what matrices are stored as: ${GGUF_WEIGHT_TYPES.map((t) => t.toLowerCase()).join(', ')} (default f32; norms stay F32; a matrix whose rows a quant's block does not divide is stored Q8_0, else F16)`)
    .option('--f16', 'same as --type f16', false)
    .option('--name <name>', 'general.name (default: the folder name)')
    .option('--force', 'replace an existing output file', false)
    .option('--json', 'print the summary as JSON', false)
    .action((model: string, f: ExportGgufFlags) => {
      if (existsSync(f.out) && !f.force) throw new Error(`${f.out} exists; choose another --out or pass --force to replace it`);
      const type = f.type === undefined ? (f.f16 ? 'F16' : 'F32') : (f.type.toUpperCase() as GgufWeightType);
      if (!GGUF_WEIGHT_TYPES.includes(type)) throw new Error(`--type: unknown type "${f.type}" (choose from ${GGUF_WEIGHT_TYPES.map((t) => t.toLowerCase()).join(', ')})`);
      if (f.f16 && type !== 'F16') throw new Error(`--f16 and --type ${f.type} disagree; give one`);
      const summary = exportGguf(resolveModelDir(model), f.out, { type, ...(f.name !== undefined ? { name: f.name } : {}) });
      readGgufHeader(f.out); // read back what was written: a writer bug fails here, not in llama.cpp
      if (f.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      else {
        const fb = summary.fallbacks.length > 0 ? `; ${summary.fallbacks.length} stored ${[...new Set(summary.fallbacks.map((x) => x.type))].join('/')} (rows not a multiple of the ${summary.fileType} block)` : '';
        process.stdout.write(`wrote ${f.out}: ${summary.tensors} tensors (${summary.fileType}${fb}), ${summary.metadata} metadata keys, ${bytes(summary.bytes)}, ${summary.rope}\n`);
      }
    });
}
