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

export function buildProgram(): Command {
  const program = new Command('longctx')
    .description('Extend LLaMA-architecture models to long context (RoPE ABF, "Llama 2 Long") and measure whether it worked.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)');
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
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode); // commander already printed it
    const err = e as Error;
    process.stderr.write(`longctx: ${err.message.split('\n')[0]}\n`);
    if (process.env.LONGCTX_DEBUG) process.stderr.write(`${err.stack ?? ''}\n`);
    process.exit(1);
  }
}

await main();
