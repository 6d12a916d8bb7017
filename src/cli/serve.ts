// `longctx serve MODEL`: an OpenAI-compatible HTTP server for a model folder (src/serve/server.ts).

import path from 'node:path';
import { isIPv4 } from 'node:net';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { parameterCount } from '../model/params.js';
import { DEFAULT_CHUNK } from '../eval/backends/local.js';
import { startServer, DEFAULT_MAX_CONCURRENCY } from '../serve/server.js';
import { chatTemplateOf, UnsupportedChatTemplateError } from '../data/chat-template.js';
import { readTokenizerConfig } from '../data/tokenizer/load.js';
import { human, intArg, kernelsFlag, kernelsOption } from './args.js';
import { openModel } from '../eval/open.js';

interface ServeFlags {
  host: string; port: number; maxConcurrency: number; ctx?: number; chunk: number; name?: string; apiKeyEnv?: string; quiet: boolean; kernels?: string;
}

function portArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`--port must be an integer 0..65535 (0 = any free port), got "${v}"`);
  return n;
}

export { readTokenizerConfig } from '../data/tokenizer/load.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve a model folder over an OpenAI-compatible HTTP API: /v1/models, /v1/completions (prompt log-probabilities with echo), /v1/chat/completions (streaming)')
    .argument('<model>', 'model folder (config.json, model.safetensors, tokenizer.json) or a run folder with model/')
    .option('--host <addr>', 'address to listen on (0.0.0.0: every interface, reachable from other machines)', '127.0.0.1')
    .option('--port <n>', 'port (0: any free port, printed at start)', portArg, 8088)
    .option('--max-concurrency <n>', 'requests admitted at once, running or waiting in line (the model runs one at a time); more get 429 with Retry-After', intArg('--max-concurrency', 1), DEFAULT_MAX_CONCURRENCY)
    .option('--ctx <n>', 'the longest prompt + completion in tokens (default max_position_embeddings); its KV cache must fit in free memory', intArg('--ctx', 2))
    .option('--chunk <n>', 'prefill chunk (rows per forward)', intArg('--chunk', 1), DEFAULT_CHUNK)
    .addOption(kernelsOption())
    .option('--name <id>', 'the model id of /v1/models and responses (default the folder name)')
    .option('--api-key-env <NAME>', 'require "Authorization: Bearer KEY" with KEY read from this environment variable')
    .option('--quiet', 'no request log on stderr', false)
    .addHelpText('after', `
Endpoints: GET /v1/models, GET /v1/models/{id}, POST /v1/completions, POST /v1/chat/completions
(the chat_template of the model's tokenizer_config.json, or Llama 2's [INST] format without one; a
template that does not parse gets 400, and a warning at start; "stream": true for server-sent
events), GET /health, and for longctx's own client GET /longctx/info and GET /longctx/tokenizer.json.
Evaluate through it with: longctx eval http://HOST:PORT/v1 ...
Ctrl-C (SIGINT) or SIGTERM finishes the admitted requests and exits; a second one exits at once.`)
    .action(async (model: string, f: ServeFlags) => {
      if (/^https?:\/\//i.test(model)) throw new Error(`${model}: serve runs a model folder, not a server`);
      let apiKey: string | null = null;
      if (f.apiKeyEnv !== undefined) {
        apiKey = process.env[f.apiKeyEnv] ?? '';
        if (apiKey === '') throw new Error(`--api-key-env ${f.apiKeyEnv}: the environment variable ${f.apiKeyEnv} is unset or empty; export it, or drop --api-key-env to serve without a key`);
      }
      const opened = await openModel(model, { engine: 'local', backend: kernelsFlag(f), chunk: f.chunk, ...(f.ctx !== undefined ? { ctx: f.ctx } : {}), ...(f.name !== undefined ? { name: f.name } : {}) });
      const lm = opened.local!, cfg = opened.config!, dir = opened.dir!;
      const ctx = f.ctx ?? cfg.max_position_embeddings;
      const tokenizerConfig = readTokenizerConfig(dir);
      try {
        chatTemplateOf(tokenizerConfig, path.join(dir, 'tokenizer_config.json'));
      } catch (e) {
        if (!(e instanceof UnsupportedChatTemplateError)) throw e;
        process.stderr.write(`longctx serve: /v1/chat/completions will refuse requests: ${e.message}\n`);
      }
      const log = f.quiet ? null : (line: string): void => { process.stderr.write(`${line}\n`); };
      // loopback only by address ("127.0.0.1.example.com" is a name that resolves anywhere)
      if (apiKey === null && !((isIPv4(f.host) && f.host.startsWith('127.')) || f.host === 'localhost' || f.host === '::1')) {
        process.stderr.write(`longctx serve: warning: listening on ${f.host} without an API key: anyone who can reach this machine can use the model (--api-key-env NAME requires one)\n`);
      }
      const srv = await startServer(lm, { host: f.host, port: f.port, maxConcurrency: f.maxConcurrency, id: lm.name, apiKey, log, tokenizerConfig });
      process.stdout.write(`longctx serve: ${lm.name} (${human(parameterCount(cfg))} parameters, ${lm.info.backend} backend, context ${ctx}) at ${srv.url}/v1\n`);
      await new Promise<void>((resolve) => {
        let stopping = false;
        const onSignal = (sig: NodeJS.Signals): void => {
          if (stopping) {
            process.stderr.write(`longctx serve: ${sig} again: stopping now\n`);
            process.exit(130);
          }
          stopping = true;
          process.stderr.write(`longctx serve: ${sig}: finishing ${srv.active()} admitted request(s), then exiting (${sig} again to stop at once)\n`);
          void srv.close().then(() => {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
            resolve();
          });
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
      process.stdout.write('longctx serve: stopped\n');
    });
}
