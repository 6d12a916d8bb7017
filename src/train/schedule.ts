// Learning-rate schedule of Llama 2 and of the paper's continual pretraining: linear warm-up, then
// cosine decay to a floor (Llama 2 decays to 10% of the peak).

export interface LrSchedule {
  maxLr: number;
  minLr: number;
  warmupSteps: number;
  totalSteps: number;
}

/** Learning rate for optimizer step `step` (0-based). */
export function lrAt(s: LrSchedule, step: number): number {
  if (step < s.warmupSteps) return (s.maxLr * (step + 1)) / s.warmupSteps;
  if (step >= s.totalSteps) return s.minLr;
  const decaySteps = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = (step - s.warmupSteps) / decaySteps; // 0 .. 1
  return s.minLr + 0.5 * (s.maxLr - s.minLr) * (1 + Math.cos(Math.PI * progress));
}

export function validateSchedule(s: LrSchedule): void {
  if (!(s.maxLr > 0)) throw new RangeError(`learning rate must be > 0, got ${s.maxLr}`);
  if (!(s.minLr >= 0 && s.minLr <= s.maxLr)) throw new RangeError(`min learning rate must be in [0, ${s.maxLr}], got ${s.minLr}`);
  if (!(Number.isInteger(s.warmupSteps) && s.warmupSteps >= 0)) throw new RangeError(`warm-up steps must be an integer >= 0, got ${s.warmupSteps}`);
  if (!(Number.isInteger(s.totalSteps) && s.totalSteps >= 1)) throw new RangeError(`total steps must be an integer >= 1, got ${s.totalSteps}`);
}
