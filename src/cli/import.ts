// `longctx import gguf FILE --out DIR`: a llama.cpp GGUF file (quantized too) as a model folder, so a
// model a user has only as a GGUF can be continue-pretrained, extended and evaluated by longctx.

import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { importGguf, llamaConfigFromGguf } from '../io/gguf-llama.js';
import { parseRopeScaling } from '../model/rope.js';
import { readGgufHeader } from '../io/gguf.js';
import { jsonErrorText } from '../util/json-error.js';
import { checkOutFolder } from './args.js';
import type { WeightDtype } from '../model/config.js';
import { dtypeArg } from './train-flags.js';

interface ImportGgufFlags { out: string; ropeScaling?: string; dtype?: WeightDtype; force: boolean; json: boolean }

export function registerImport(program: Command): void {
  const imp = program.command('import').description('convert another format to a model folder (gguf: from llama.cpp)');
  imp
    .command('gguf')
    .description(
      'write a model folder (config.json, model.safetensors, tokenizer.json, generation_config.json) from a ' +
        'llama GGUF file: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K tensors are dequantized ' +
        'as llama.cpp defines them, q/k rows return to the Hugging Face layout, the tokenizer comes from the file ' +
        '(tokenizer.huggingface.json or tokenizer.ggml.*) or a tokenizer.json beside it',
    )
    .argument('<file>', 'a .gguf file with general.architecture "llama"')
    .requiredOption('--out <dir>', 'model folder to create (written atomically)')
    .option('--rope-scaling <json>', 'rope_scaling of a file with a rope_freqs tensor (Llama 3.1 / 3.2), from the model\'s config.json; checked against the tensor')
    .option('--dtype <name>', 'what the folder\'s weights are stored as: float32, bfloat16 or float16 (default: the file\'s F16 / BF16, float32 for F32 and quantized files)', dtypeArg)
    .option('--force', 'replace an existing model folder', false)
    .option('--json', 'print the summary as JSON', false)
    .action((file: string, f: ImportGgufFlags) => {
      if (!existsSync(file)) throw new Error(`${file}: no such file`);
      checkOutFolder(f.out, f.force, 'config.json', 'model');
      let ropeScaling;
      if (f.ropeScaling !== undefined) {
        let raw: unknown;
        try {
          raw = JSON.parse(f.ropeScaling);
        } catch (e) {
          throw new Error(`--rope-scaling: ${jsonErrorText(e)}; give a JSON object like '{"rope_type":"llama3","factor":8,...}'`);
        }
        ropeScaling = parseRopeScaling(raw, llamaConfigFromGguf(readGgufHeader(file)).head_dim, '--rope-scaling') ?? undefined;
      }
      const s = importGguf(file, f.out, { ...(ropeScaling ? { ropeScaling } : {}), ...(f.dtype ? { dtype: f.dtype } : {}) });
      if (f.json) process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      else {
        const types = Object.entries(s.types).map(([t, n]) => `${n} ${t}`).join(', ');
        process.stdout.write(`wrote ${s.out}: ${s.parameters.toLocaleString('en-US')} parameters (from ${types} tensors) as ${s.dtype}, ${s.rope}, tokenizer from ${s.tokenizer}${s.chatTemplate ? ' with its chat template' : ''}\n`);
      }
    });
}
