// `longctx export gguf MODEL --out FILE`: a model folder as a llama.cpp GGUF file.

import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { exportGguf } from '../io/gguf-llama.js';
import { readGgufHeader } from '../io/gguf.js';
import { bytes } from './args.js';
import { resolveModelDir } from '../eval/open.js';

interface ExportGgufFlags { out: string; f16: boolean; name?: string; force: boolean; json: boolean }

export function registerExport(program: Command): void {
  const exp = program.command('export').description('convert a model folder to another format (gguf: for llama.cpp)');
  exp
    .command('gguf')
    .description(
      'write a llama.cpp GGUF file: llama.* metadata (RoPE base and scaling included), the tokenizer ' +
        '(tokenizer.ggml.* and the original tokenizer.json), F32 tensors with llama.cpp names and q/k ' +
        'permuted to its interleaved RoPE layout. RoPE variants llama.cpp cannot compute (dynamic NTK, ' +
        'LongRoPE, xPos, YaRN with custom attention factor or betas) are refused.',
    )
    .argument('<model>', 'model folder (config.json, model.safetensors, tokenizer.json) or a run folder with model/')
    .requiredOption('--out <file>', 'output .gguf file (written atomically)')
    .option('--f16', 'store matrices as F16 (half the size; norms stay F32)', false)
    .option('--name <name>', 'general.name (default: the folder name)')
    .option('--force', 'replace an existing output file', false)
    .option('--json', 'print the summary as JSON', false)
    .action((model: string, f: ExportGgufFlags) => {
      if (existsSync(f.out) && !f.force) throw new Error(`${f.out} exists; choose another --out or pass --force to replace it`);
      const summary = exportGguf(resolveModelDir(model), f.out, { f16: f.f16, ...(f.name !== undefined ? { name: f.name } : {}) });
      readGgufHeader(f.out); // read back what was written: a writer bug fails here, not in llama.cpp
      if (f.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      else process.stdout.write(`wrote ${f.out}: ${summary.tensors} tensors (${summary.fileType}), ${summary.metadata} metadata keys, ${bytes(summary.bytes)}, ${summary.rope}\n`);
    });
}
