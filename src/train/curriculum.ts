// Sequence-length curriculum (paper §4.4): train at a short length for a share of the tokens, then
// switch to the long one. Tokens per optimizer step stay constant across stages (the batch shrinks
// as sequences grow), so stages compare at equal tokens; FLOPs are counted per stage with
// DESIGN.md's formula so curricula also compare at equal compute.

import type { LlamaConfig } from '../model/config.js';
import { trainingFlopsPerToken } from '../model/estimate.js';

export interface ScheduleEntry {
  seqLen: number; // T of the stage
  share: number; // fraction of the run's tokens
}

export interface Stage {
  seqLen: number;
  batchSize: number; // sequences per optimizer step: tokensPerStep / seqLen
  steps: number;
  firstStep: number; // index of its first optimizer step in the run
  flops: number; // training FLOPs of the stage
}

/** "256:0.8,2048:0.2" -> entries; a single length "2048" means the whole run at it. */
export function parseSchedule(text: string, flag = '--schedule'): ScheduleEntry[] {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw new Error(`${flag} is empty; give e.g. 256:0.8,2048:0.2`);
  const entries = parts.map((p) => {
    const [len, share, extra] = p.split(':');
    const seqLen = Number(len);
    const s = share === undefined ? (parts.length === 1 ? 1 : NaN) : Number(share);
    if (extra !== undefined || !Number.isInteger(seqLen) || seqLen < 1 || !(s > 0 && s <= 1)) {
      throw new Error(`${flag}: "${p}" is not LENGTH:SHARE with an integer length >= 1 and a share in (0, 1]`);
    }
    return { seqLen, share: s };
  });
  const total = entries.reduce((a, e) => a + e.share, 0);
  if (Math.abs(total - 1) > 1e-6) throw new Error(`${flag}: shares add up to ${total}, they must add up to 1`);
  return entries;
}

/**
 * Steps per stage for a run of `tokens` tokens at `tokensPerStep` tokens per optimizer step. Each
 * stage gets round(share * totalSteps) steps, the last takes the remainder. Throws if a stage's
 * length does not divide tokensPerStep.
 */
export function planStages(schedule: ScheduleEntry[], tokens: number, tokensPerStep: number, cfg: LlamaConfig): Stage[] {
  if (!(Number.isInteger(tokensPerStep) && tokensPerStep >= 1)) throw new Error(`tokens per step must be a positive integer, got ${tokensPerStep}`);
  const totalSteps = Math.floor(tokens / tokensPerStep);
  if (totalSteps < 1) throw new Error(`--tokens ${tokens} is less than one step of ${tokensPerStep} tokens; raise --tokens or lower --tokens-per-step`);
  const stages: Stage[] = [];
  let first = 0;
  schedule.forEach((e, i) => {
    if (tokensPerStep % e.seqLen !== 0) {
      throw new Error(`tokens per step ${tokensPerStep} is not a multiple of sequence length ${e.seqLen}; choose --tokens-per-step divisible by every length in --schedule`);
    }
    const steps = i === schedule.length - 1 ? totalSteps - first : Math.round(e.share * totalSteps);
    const batchSize = tokensPerStep / e.seqLen;
    stages.push({ seqLen: e.seqLen, batchSize, steps, firstStep: first, flops: steps * tokensPerStep * trainingFlopsPerToken(cfg, e.seqLen) });
    first += steps;
  });
  // rounding the shares of a short run can leave a stage nothing (or less: the earlier stages
  // rounded up past the total), and a length that is never trained must not be recorded as trained
  const empty = stages.find((s) => s.steps < 1);
  if (empty) {
    throw new Error(`the --schedule stage at ${empty.seqLen} tokens gets ${empty.steps} of the ${totalSteps} steps that --tokens ${tokens} makes (${tokensPerStep} tokens per step); raise --tokens or that length's share`);
  }
  return stages;
}

/** The stage that optimizer step `step` (0-based) belongs to. */
export function stageAt(stages: Stage[], step: number): Stage {
  for (const s of stages) if (step < s.firstStep + s.steps) return s;
  return stages[stages.length - 1]!;
}
