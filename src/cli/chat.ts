// `longctx chat MODEL`: a terminal conversation with a model folder in the Llama 2 chat format (the
// template instruction-tuned models carry; data/chat-template.ts). One line is one user message;
// /reset forgets the conversation, /exit (or end of input) quits. Works with piped stdin: then
// only the answers go to stdout, one after another, each ending with a newline.

import * as readline from 'node:readline';
import path from 'node:path';
import type { Command } from 'commander';
import { randomInt } from 'node:crypto';
import { stopTokenIds } from '../model/config.js';
import { DEFAULT_CHUNK } from '../eval/backends/local.js';
import { openModel } from '../eval/open.js';
import { chatFormat, type ChatMessage } from '../data/chat-template.js';
import { IncrementalDecoder } from '../serve/detok.js';
import { sampleToken } from '../model/sample.js';
import { Rng } from '../util/rng.js';
import { floatArg, intArg, kernelsFlag, kernelsOption, topPArg } from './args.js';
import { readTokenizerConfig } from './serve.js';

interface ChatFlags { temperature: number; topP: number; seed?: number; maxNew: number; system?: string; ctx?: number; chunk: number; kernels?: string }

export function registerChat(program: Command): void {
  program
    .command('chat')
    .description('chat with a model folder in the terminal (the chat_template of its tokenizer_config.json, or Llama 2\'s [INST] format without one); works with piped stdin')
    .argument('<model>', 'model folder (config.json, model.safetensors, tokenizer.json) or a run folder with model/')
    .option('--temperature <t>', 'sampling temperature (0: greedy)', floatArg('--temperature', 0), 0)
    .option('--top-p <p>', 'nucleus sampling mass', topPArg, 1)
    .option('--seed <n>', 'seed of the sampler (default: random)', intArg('--seed', 0))
    .option('--max-new <n>', 'longest answer in tokens', intArg('--max-new', 1), 256)
    .option('--system <text>', 'a system message, folded into the first turn')
    .option('--ctx <n>', 'context in tokens (default max_position_embeddings); older turns are dropped to fit', intArg('--ctx', 16))
    .option('--chunk <n>', 'prefill chunk (rows per forward)', intArg('--chunk', 1), DEFAULT_CHUNK)
    .addOption(kernelsOption())
    .addHelpText('after', `
Commands: /reset starts a new conversation, /exit quits (so does Ctrl-D or the end of piped input).
Example: printf 'Who is Ishmael?\\n/exit\\n' | longctx chat out/sft --max-new 64`)
    .action(async (model: string, f: ChatFlags) => {
      if (/^https?:\/\//i.test(model)) throw new Error(`${model}: chat runs a model folder; for a server use its /v1/chat/completions`);
      // weights load on the first answer, after the template check
      const opened = await openModel(model, { engine: 'local', backend: kernelsFlag(f), chunk: f.chunk, defer: true, ...(f.ctx !== undefined ? { ctx: f.ctx } : {}) });
      const lm = opened.local!, cfg = opened.config!, dir = opened.dir!;
      const ctx = f.ctx ?? cfg.max_position_embeddings;
      const tok = lm.tokenizer;
      const format = chatFormat(tok, readTokenizerConfig(dir), path.join(dir, 'tokenizer_config.json')); // the model's template, or Llama 2's
      // every end-of-sequence id (Llama 3 Instruct has three) and the template's end of turn
      const eosIds = new Set([...stopTokenIds(cfg, tok.eosId), ...format.stopIds]);
      const rng = new Rng(f.seed ?? randomInt(2 ** 31));
      const tty = process.stdin.isTTY === true;
      const note = (s: string): void => { process.stderr.write(`${s}\n`); };
      if (tty) note(`longctx chat: ${lm.name} (context ${ctx}); /reset starts over, /exit quits`);

      let history: ChatMessage[] = [];
      let unanswered = 0; // messages too long for the context
      const rl = readline.createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty, prompt: '> ' });
      if (tty) rl.prompt();
      for await (const raw of rl) {
        const line = raw.trim();
        if (line === '/exit' || line === '/quit') break;
        if (line === '/reset') {
          history = [];
          note('(new conversation)');
        } else if (line !== '') {
          history.push({ role: 'user', content: line });
          // Drop the oldest exchanges until the conversation leaves room for at least one token.
          const system: ChatMessage[] = f.system !== undefined ? [{ role: 'system', content: f.system }] : [];
          let prompt = format.prompt([...system, ...history]);
          while (prompt.length >= ctx && history.length > 1) {
            history = history.slice(2);
            prompt = format.prompt([...system, ...history]);
            note('(older turns dropped to fit the context)');
          }
          if (prompt.length >= ctx) {
            note(`longctx chat: the message is ${prompt.length} tokens, the context is ${ctx} (--ctx); send a shorter one`);
            history = [];
            unanswered++;
          } else {
            const maxNew = Math.min(f.maxNew, ctx - prompt.length);
            const dec = lm.decoder(prompt, maxNew);
            const detok = new IncrementalDecoder(tok, prompt);
            let row = dec.row;
            let answer = '';
            for (let n = 1; ; n++) {
              const id = sampleToken(row, { temperature: f.temperature, topP: f.topP }, rng);
              if (eosIds.has(id)) break;
              // the answer's first token carries the space after [/INST]: not shown (Meta's chat decodes the answer alone)
              const piece = answer === '' ? detok.push(id).trimStart() : detok.push(id);
              answer += piece;
              process.stdout.write(piece);
              if (n >= maxNew) break;
              row = dec.feed(id);
            }
            const rest = answer === '' ? detok.flush().trimStart() : detok.flush();
            answer += rest;
            process.stdout.write(`${rest}\n`);
            history.push({ role: 'assistant', content: answer });
          }
        }
        if (tty) rl.prompt();
      }
      rl.close();
      process.stdin.destroy(); // a pipe still open upstream must not keep the process alive after /exit
      // at a terminal the user saw the note and went on; a script must not read silence as success
      if (!tty && unanswered > 0) throw new Error(`${unanswered} message(s) got no answer: longer than the context of ${ctx} tokens; send shorter ones or raise --ctx`);
    });
}
