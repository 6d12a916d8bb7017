// `longctx report DIR...`: eval output folders side by side in one self-contained HTML page.

import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { writeFileAtomic } from '../util/atomic.js';
import { loadEvalRuns } from '../report/runs.js';
import { buildEvalReport, heldOutDifferences } from '../report/html.js';
import { writeEvalCharts } from '../report/render.js';

interface ReportFlags { out: string; title?: string; names?: string[]; charts: boolean }

function namesArg(v: string): string[] {
  const names = v.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) throw new InvalidArgumentError(`--names has an empty name in "${v}"`);
  return names;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('compare eval output folders (longctx eval --out DIR) in one self-contained HTML page: overlaid charts, a Table-5-style summary, power-law fits, each run\'s model and RoPE')
    .argument('<dirs...>', 'eval output folders (each with results.json)')
    .requiredOption('--out <file>', 'the HTML file to write (replaced if it exists)')
    .option('--title <text>', 'page title (default: the run names)')
    .option('--names <list>', 'comma-separated legend names, one per folder (default: the folder names)', namesArg)
    .option('--charts', 'also (re)write each folder\'s charts/ (SVG + PNG)', false)
    .action(async (dirs: string[], f: ReportFlags) => {
      const runs = loadEvalRuns(dirs, f.names); // every folder is checked before anything is written
      const differences = heldOutDifferences(runs);
      if (differences.length > 0) process.stderr.write(`longctx report: warning: the runs were evaluated on different held-out text, so their figures are not paired: ${differences.join('; ')}\n`);
      const html = await buildEvalReport(runs, f.title !== undefined ? { title: f.title } : {});
      writeFileAtomic(f.out, html);
      if (f.charts) {
        for (const r of runs) await writeEvalCharts(r.dir!, r.results, { name: r.name });
      }
      process.stdout.write(`wrote ${f.out} (${runs.length} run${runs.length === 1 ? '' : 's'}: ${runs.map((r) => r.name).join(', ')})\n`);
    });
}
