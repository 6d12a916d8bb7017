#!/usr/bin/env node
// longctx command line: each subcommand lives in its own file and only parses flags, calls the
// library, and prints. Errors become one line on stderr (LONGCTX_DEBUG=1 adds the stack).

import { Command, CommanderError } from 'commander';
import { registerInit } from './init.js';
import { registerInfo } from './info.js';
import { registerRope } from './rope.js';
import { registerBench } from './bench.js';
import { registerPretrain } from './pretrain.js';
import { registerExtend } from './extend.js';
import { registerTokenizer } from './tokenizer.js'; import { registerData } from './data.js';
import { registerEval } from './eval.js'; import { registerExport } from './export.js'; import { registerImport } from './import.js';
import { registerReport } from './report.js';
import { registerServe } from './serve.js';
import { registerRepro } from './repro.js';
import { registerInstruct } from './instruct.js';
import { registerChat } from './chat.js';
import { registerPlan } from './plan.js';
import { VERSION } from '../version.js';
import { errorLine } from '../util/system-error.js';

export function buildProgram(): Command {
  const program = new Command('longctx')
    .description('Extend LLaMA-architecture models to long context (RoPE ABF, "Llama 2 Long") and measure whether it worked.')
    .version(VERSION)
    // commander's own errors (a missing or unknown option, a bad value) in the style of ours: one line
    .configureOutput({ outputError: (text, write) => write(`${commanderError(text)}\n`) });
  registerInit(program);
  registerInfo(program);
  registerRope(program);
  registerPretrain(program);
  registerExtend(program);
  registerBench(program);
  registerTokenizer(program); registerData(program);
  registerEval(program); registerExport(program); registerImport(program);
  registerReport(program);
  registerServe(program);
  registerRepro(program);
  registerInstruct(program);
  registerChat(program);
  registerPlan(program);
  markRequired(program);
  return program;
}

/** "error: required option '--out <dir>' not specified" -> "longctx: --out is required (see --help)", and so on. */
export function commanderError(text: string): string {
  // commander puts its suggestion on a line of its own: fold it into the one line
  const t = text.replace(/^error: /, '').trim().replace(/\s*\n\(Did you mean (.+?)\?\)$/, '; did you mean $1?');
  const missing = /^required option '(--[\w-]+)[^']*' not specified$/.exec(t);
  if (missing) return `longctx: ${missing[1]} is required (see --help)`;
  // commander's own .choices() check names neither the option nor the value: say both
  const choice = /^option '(--[\w-]+)[^']*' argument '(.*?)' is invalid\. Allowed choices are (.+?)\.?$/.exec(t);
  if (choice) return `longctx: ${choice[1]} must be one of ${choice[3]}, got "${choice[2]}"`;
  // a value our parser refused: its message says it all
  const invalid = /^(?:option '[^']*' argument|command-argument value) '.*?' is invalid(?: for argument '[^']*')?\. ([\s\S]+)$/.exec(t);
  if (invalid) return `longctx: ${invalid[1]!.replace(/\s+/g, ' ')}`;
  return `longctx: ${t.replace(/'(--[\w-]+)(?: <[^>]+>)?'/g, '$1')}${/--help/.test(t) ? '' : ' (see --help)'}`;
}

/** --help says which options are required: commander's mandatory ones get "(required)". */
function markRequired(cmd: Command): void {
  for (const o of cmd.options) if (o.mandatory && !/\(required\)$/.test(o.description)) o.description += ' (required)';
  for (const c of cmd.commands) markRequired(c);
}

async function main(): Promise<void> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode); // commander already printed it
    const err = e as Error;
    process.stderr.write(`longctx: ${errorLine(err)}\n`);
    if (process.env.LONGCTX_DEBUG) process.stderr.write(`${err.stack ?? ''}\n`);
    process.exit(1);
  }
}

await main();
