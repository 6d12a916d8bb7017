// `longctx repro instruct`: the paper's instruction-tuning ablation (Table 9) at laptop scale, top to
// bottom:
//
//   tokenizer, data, base, ABF extension      the same cached stages as `longctx repro`
//   -> pairs: the cloze generator (instruct/cloze.ts, the offline stand-in for Llama 2 Chat) writes
//      and verifies pairs about chunks of the corpus; split by document into training pairs and
//      validation pairs about documents no row trains on
//   -> short chat data: the training pairs' generator conversations (instruct distill), standing in
//      for the paper's RLHF data
//   -> four fine-tunings of the ABF model, cumulative as the paper's rows:
//        short chat data only | + pretraining data mix | + self-instruct pairs, loss on answers |
//        + LM loss on the long inputs
//      each the same steps and batch, validated on the held-out pairs' answers
//   -> OUT/instruct.html: our answer losses beside the paper's Table 9
//
// The paper scores downstream long QA (Qasper, NarrativeQA, ...) of large models; at this size the
// measure is the loss on held-out answers, which the page says.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadTokenizer } from '../data/tokenizer/load.js';
import { ClozeGenerator } from '../instruct/cloze.js';
import { selfInstruct } from '../instruct/generate.js';
import { distill } from '../instruct/distill.js';
import { splitPairsByDocument } from '../instruct/build.js';
import { readMetrics, FINAL_MODEL } from '../train/run.js';
import { runStage } from './stages.js';
import { ANSWER_LOSSES, answerLossesOf, instructTrain, resumeInstruct } from './instruct.js';
import { baseStage, extendStage, note, prepareShared, trainEnvOf, trainStage, type ReproOptions, type ReproPreset } from './repro.js';
import { writeFileAtomic } from '../util/atomic.js';
import { renderReport } from '../report/html.js';
import { claimsSection, instructSection, type InstructAblationInput, type InstructAblationRow } from '../report/repro.js';
import { computeClaims, type ClaimRow } from '../report/claims.js';
import { SUMMARY } from '../train/run.js';
import type { TrainSummary } from '../train/trainer.js';

/** The paper's rows, cumulative; Qasper F1 quoted from its Table 9. */
const ROWS = [
  { id: 'chat', name: 'short chat data only', paper: 'Long + RLHF V5: 22.3' },
  { id: 'mix', name: '+ pretraining data mix', paper: '+ pretrain data mix: 23.7' },
  { id: 'self', name: '+ self-instruct, loss on answers', paper: '+ self-inst, no LM loss on input: 35.7' },
  { id: 'self-input', name: '+ self-instruct, LM loss on input', paper: '+ self-inst with LM loss: 38.9' },
] as const;

/** Share of documents whose pairs are held out for validation. */
const VAL_DOCS = 0.15;

/** One fine-tuning's answer loss per held-out sequence (the claim pairs rows by sequence and seed). */
export interface InstructEval { row: string; seed: number; losses: number[] }

export interface InstructAblationOutcome {
  preset: ReproPreset;
  pairs: { train: number; val: number; chat: number };
  /** the first seed's rows (the table and curves) */
  rows: InstructAblationRow[];
  seeds: number;
  /** every seed's rows, per held-out sequence */
  evals: InstructEval[];
  stages: { name: string; seconds: number; skipped: boolean }[];
}

function rowFromRun(name: string, paper: string, runDir: string, s: TrainSummary): InstructAblationRow {
  const evals = readMetrics(runDir).filter((m) => m.type === 'eval').map((m) => ({ step: m.step, loss: m.val_loss }));
  const first = evals.find((e) => e.step === 0);
  const last = evals[evals.length - 1];
  return { name, paper, before: first?.loss ?? null, after: last && last.step > 0 ? last.loss : null, curve: evals, seconds: s.seconds, tokens: s.tokens };
}

/** Table 9 at laptop scale; see the top of the file. */
export async function reproInstruct(o: Omit<ReproOptions, 'only'>): Promise<InstructAblationOutcome> {
  const p = o.preset;
  const log = o.log ?? ((l: string) => process.stderr.write(`repro instruct: ${l}\n`));
  const scale = o.tokenScale ?? 1;
  if (!(scale > 0)) throw new Error(`--token-scale must be positive, got ${scale}`);
  const seed = o.seed ?? 0;
  const sh = await prepareShared(p, o.out, seed, log, o.quiet ?? false, o.backend);
  const base = await baseStage(sh, p, o.out, scale, seed);
  const abf = await extendStage(sh, p, o.out, base.key, 'abf', scale, seed);
  const abfDir = path.join(o.out, 'runs', 'abf');

  // Pairs from the cloze teacher, split by document; its conversations as the short chat data.
  const dir = path.join(o.out, 'instruct');
  const pairsDir = path.join(dir, 'pairs');
  const files = { all: path.join(pairsDir, 'all.jsonl'), train: path.join(pairsDir, 'train.jsonl'), val: path.join(pairsDir, 'val.jsonl'), chat: path.join(pairsDir, 'chat.jsonl') };
  const pairsStage = await runStage({
    name: 'instruct pairs', dir: pairsDir, settings: { model: abf.key, sources: p.sources, seed, ctx: p.instructCtx, perDoc: 2, valDocs: VAL_DOCS },
    // an interrupted attempt (same settings) resumes: generation skips the chunks already recorded
    run: async () => {
      const tok = loadTokenizer(path.join(abfDir, FINAL_MODEL));
      await selfInstruct(new ClozeGenerator(tok, p.instructCtx), {
        sources: p.sources, out: files.all, seed, perDoc: 2, minDocTokens: 0, maxNew: 128, verifyMaxNew: 16, shortP: 0.5, ctx: p.instructCtx,
      });
      const split = splitPairsByDocument(files.all, files.train, files.val, VAL_DOCS, seed);
      const chat = distill({ data: [files.train], out: files.chat, negatives: 1, seed }).conversations;
      writeFileAtomic(path.join(pairsDir, 'counts.json'), JSON.stringify({ ...split, chat }) + '\n');
      return { ...split, chat };
    },
    load: () => JSON.parse(fs.readFileSync(path.join(pairsDir, 'counts.json'), 'utf8')) as InstructAblationOutcome['pairs'],
  }, log);
  const pairs = note(sh, 'instruct pairs', pairsStage);

  // The four rows, cumulative, each the same steps from the ABF model; every seed fine-tunes all four
  // (the seed orders the data), and each final model is scored on every held-out sequence.
  const steps = Math.max(4, Math.round(p.instructSteps * scale));
  const seeds = o.seeds ?? p.seeds;
  if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`--seeds must be a positive integer, got ${seeds}`);
  const rows: InstructAblationRow[] = [];
  const evals: InstructEval[] = [];
  for (let k = 0; k < seeds; k++) {
    const s = seed + k;
    for (const r of ROWS) {
      const runDir = instructRunDir(o.out, r.id, k);
      const settings = { model: abf.key, pairs: pairsStage.key, row: r.id, steps, batch: p.instructBatch, lr: p.instructLr, len: p.longLen, seed: s };
      const t = await trainStage(sh, `instruct ${r.id}${k === 0 ? '' : ` (seed ${s})`}`, runDir, settings, () => instructTrain({
        from: abfDir, out: runDir, chat: [files.chat], data: r.id === 'self' || r.id === 'self-input' ? [files.train] : [], valData: [files.val],
        ...(r.id !== 'chat' ? { pretrainData: sh.dataDir } : {}), lossOnInput: r.id === 'self-input',
        seqLen: p.longLen, batchSize: p.instructBatch, steps, lr: p.instructLr, seed: s, keepCheckpoints: 1,
        evalEvery: Math.max(1, Math.round(steps / 6)), checkpointEvery: Math.max(1, Math.round(steps / 3)),
      }, trainEnvOf(sh)), resumeInstruct);
      if (k === 0) rows.push(rowFromRun(r.name, r.paper, runDir, t.summary));
      evals.push({ row: r.id, seed: s, losses: answerLossesOf(runDir, sh.backend) });
    }
  }
  return { preset: p, pairs, rows, seeds, evals, stages: sh.stages };
}

/** Seed k's run of a row: OUT/instruct/ROW for the first seed (the table), OUT/instruct-seeds/ROW-sK after. */
function instructRunDir(out: string, row: string, k: number): string {
  return k === 0 ? path.join(out, 'instruct', row) : path.join(out, 'instruct-seeds', `${row}-s${k}`);
}

/** The per-sequence answer losses already on disk, every seed (for the claims of the main report). */
export function instructEvalsOnDisk(out: string, seed = 0): InstructEval[] {
  const evals: InstructEval[] = [];
  for (const r of ROWS) {
    for (let k = 0; ; k++) {
      const file = path.join(instructRunDir(out, r.id, k), ANSWER_LOSSES);
      if (!fs.existsSync(file)) break;
      evals.push({ row: r.id, seed: seed + k, losses: (JSON.parse(fs.readFileSync(file, 'utf8')) as { losses: number[] }).losses });
    }
  }
  return evals;
}

/** The ablation's finished rows under OUT/instruct (for the main report), or null when there are none. */
export function instructOnDisk(out: string, p: ReproPreset): InstructAblationInput | null {
  const dir = path.join(out, 'instruct');
  const countsFile = path.join(dir, 'pairs', 'counts.json');
  if (!fs.existsSync(countsFile)) return null;
  const rows = ROWS.filter((r) => fs.existsSync(path.join(dir, r.id, SUMMARY))).map((r) => {
    const runDir = path.join(dir, r.id);
    return rowFromRun(r.name, r.paper, runDir, JSON.parse(fs.readFileSync(path.join(runDir, SUMMARY), 'utf8')) as TrainSummary);
  });
  if (rows.length === 0) return null;
  return {
    rows, longLen: p.longLen, steps: rows[0]!.curve.at(-1)?.step ?? 0, batch: p.instructBatch,
    pairs: JSON.parse(fs.readFileSync(countsFile, 'utf8')) as InstructAblationInput['pairs'], sources: p.sources,
  };
}

/** Writes OUT/instruct.html: Table 9's claims with intervals, the ablation table and answer-loss curves beside the paper's. */
export async function writeInstructReport(a: InstructAblationOutcome, out: string): Promise<{ file: string; claims: ClaimRow[] }> {
  const file = path.join(out, 'instruct.html');
  const input = instructOnDisk(out, a.preset);
  if (!input) throw new Error(`no finished instruction-tuning rows under ${path.join(out, 'instruct')}`);
  const claims = computeClaims({ baseLen: a.preset.baseLen, longLen: a.preset.longLen, evals: [], instructEvals: a.evals });
  writeFileAtomic(file, renderReport({
    title: `longctx repro instruct (${a.preset.name})`,
    subtitle: 'Instruction tuning on self-instructed long data (paper §4.3, Table 9) at laptop scale',
    sections: [...(claims.length > 0 ? [claimsSection({ claims, seeds: a.seeds, synthetic: 0 })] : []), await instructSection(input)],
  }));
  return { file, claims };
}
