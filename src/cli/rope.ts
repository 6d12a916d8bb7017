// `longctx rope`: the frequency table of a RoPE configuration, its wavelengths, and the paper's
// Appendix B embedding granularity C_d, with the paper's ABF-vs-PI comparison beside it.

import { InvalidArgumentError, type Command } from 'commander';
import { ropeParamsOf } from '../model/config.js';
import { describeRope, granularity, parseRopeScaling, ropeFrequencies, wavelengths, type RopeParams } from '../model/rope.js';
import { readModelConfig } from '../io/hf.js';
import { addRopeThetaFlag, floatArg, intArg, ropeThetaFlag } from './args.js';
import { scaledGeometry, PAPER_GEOMETRY, type ScaledGeometry } from '../model/rope-geometry.js';

/** --head-dim: RoPE rotates pairs of dimensions, so the head size is even. */
function evenHeadDim(v: string): number {
  const n = intArg('--head-dim', 2, 1_024)(v);
  if (n % 2 !== 0) throw new InvalidArgumentError(`--head-dim must be even (RoPE rotates pairs of dimensions), got "${v}"`);
  return n;
}

interface RopeOptions {
  from?: string; theta: number; headDim: number; type: string; factor?: number; originalMaxPosition?: number;
  maxPosition: number; seqLen?: number; betaFast?: number; betaSlow?: number; lowFreqFactor?: number;
  highFreqFactor?: number; scaleBase?: number; json: boolean; geometry?: string;
}

const TYPES = ['default', 'linear', 'ntk', 'dynamic', 'yarn', 'llama3', 'xpos'];

function paramsFromFlags(o: RopeOptions): RopeParams {
  if (!TYPES.includes(o.type)) throw new Error(`--type must be one of ${TYPES.join(', ')} (longrope needs factor lists: use --from a model folder), got "${o.type}"`);
  let raw: Record<string, unknown> | null = null;
  if (o.type !== 'default') {
    raw = { rope_type: o.type };
    const set = (key: string, v: number | undefined): void => { if (v !== undefined) raw![key] = v; };
    if (o.type === 'xpos') set('scale_base', o.scaleBase ?? 512);
    else set('factor', o.factor ?? (o.type === 'llama3' ? 8 : 4));
    set('original_max_position_embeddings', o.originalMaxPosition ?? (o.type === 'llama3' ? 8192 : undefined));
    if (o.type === 'yarn') { set('beta_fast', o.betaFast); set('beta_slow', o.betaSlow); }
    if (o.type === 'llama3') { set('low_freq_factor', o.lowFreqFactor ?? 1); set('high_freq_factor', o.highFreqFactor ?? 4); }
  }
  return { headDim: o.headDim, theta: ropeThetaFlag(o) ?? 10000, scaling: parseRopeScaling(raw, o.headDim, 'rope flags'), maxPositionEmbeddings: o.maxPosition };
}

/**
 * The paper's Appendix B comparison, b = 10,000: PI with alpha = 1/4 vs ABF with beta = 50. The
 * paper's ~0.027 / ~0.076 are the d -> infinity limits alpha/ln b and 1/(ln b + ln beta); at d = 128
 * the exact means are slightly larger (0.0290 / 0.0788). We print both.
 */
function paperComparison(): { pi: number; abf: number; piLimit: number; abfLimit: number } {
  const { baseTheta, abfTheta, headDim, baseLen } = PAPER_GEOMETRY;
  const base: RopeParams = { headDim, theta: baseTheta, scaling: null, maxPositionEmbeddings: baseLen };
  const pi = granularity(ropeFrequencies({ ...base, scaling: { rope_type: 'linear', factor: 4 } }, baseLen).invFreq);
  const abf = granularity(ropeFrequencies({ ...base, theta: abfTheta }, baseLen).invFreq);
  return { pi, abf, piLimit: 0.25 / Math.log(baseTheta), abfLimit: 1 / Math.log(abfTheta) };
}

/** `--geometry 256:2048` -> [256, 2048]. */
export function parseGeometry(spec: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(spec.trim());
  if (!m || !(Number(m[2]) > Number(m[1])) || Number(m[1]) < 8) throw new Error(`--geometry must be BASE:LONG token lengths with LONG > BASE >= 8 (e.g. 256:2048), got "${spec}"`);
  return [Number(m[1]), Number(m[2])];
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

/** The derivation of the laptop-scale bases, as `longctx rope --geometry` prints it. */
export function geometryLines(g: ScaledGeometry): string[] {
  return [
    `The paper's RoPE geometry at ${g.baseLen} -> ${g.longLen} tokens (head size ${g.headDim}): keep the share of pairs whose wavelength 2*pi*theta^(2i/d) exceeds the context,`,
    `s(theta, L) = 1 - ln(L/2pi) / ln(theta), so theta = exp(ln(L/2pi) / (1 - s)).`,
    `                      paper (d=128)                           ours`,
    `base model            theta 10,000 at 4,096: ${pct(g.paper.baseShare).padStart(6)}           theta ${g.baseTheta.toLocaleString('en-US')} at ${g.baseLen}: ${pct(g.ours.baseShare)} (${pct(g.ours.basePairs)} of ${g.headDim / 2} pairs)`,
    `ABF at long length    theta 500,000 at 32,768: ${pct(g.paper.abfShareLong).padStart(6)}         theta ${g.abfTheta.toLocaleString('en-US')} at ${g.longLen}: ${pct(g.ours.abfShareLong)} (${pct(g.ours.abfPairsLong)} of pairs)`,
    `RoPE at long length   theta 10,000 at 32,768: ${pct(g.paper.ropeShareLong).padStart(6)}          theta ${g.baseTheta.toLocaleString('en-US')} at ${g.longLen}: ${pct(g.ours.ropeShareLong)} (${pct(g.ours.ropePairsLong)} of pairs)`,
    `ABF factor: ${g.abfFactor.toFixed(1)} (paper 50); PI factor: ${g.longLen / g.baseLen} (paper 8 for 4k -> 32k). theta 10,000 at ${g.longLen} would leave ${pct(1 - Math.log(g.longLen / (2 * Math.PI)) / Math.log(10000))} of the pairs beyond the long length.`,
  ];
}

export function registerRope(program: Command): void {
  addRopeThetaFlag(program
    .command('rope')
    .description('RoPE frequency table, wavelengths and the Appendix B granularity bound C_d for a base / scaling')
    .option('--from <model>', 'read the RoPE settings of a model folder instead of the flags below'), 'rope_theta (default 10000; ABF: 500000)', '--theta')
    .option('--head-dim <n>', 'head size (Llama 2: 128)', evenHeadDim, 128)
    .option('--type <t>', `scaling: ${TYPES.join(', ')}`, 'default')
    .option('--factor <x>', 'scaling factor (linear/ntk/dynamic/yarn: 4, llama3: 8)', floatArg('--factor', 1))
    .option('--original-max-position <n>', 'original_max_position_embeddings (yarn/dynamic/llama3)', intArg('--original-max-position', 1, 2 ** 26))
    .option('--max-position <n>', 'max_position_embeddings', intArg('--max-position', 1, 2 ** 26), 4096)
    .option('--seq-len <n>', 'current sequence length (dynamic NTK depends on it)', intArg('--seq-len', 1, 2 ** 26))
    .option('--beta-fast <x>', 'yarn beta_fast (32)', floatArg('--beta-fast', 0))
    .option('--beta-slow <x>', 'yarn beta_slow (1)', floatArg('--beta-slow', 0))
    .option('--low-freq-factor <x>', 'llama3 low_freq_factor (1)', floatArg('--low-freq-factor', 0))
    .option('--high-freq-factor <x>', 'llama3 high_freq_factor (4)', floatArg('--high-freq-factor', 0))
    .option('--scale-base <n>', 'xpos scale_base (512)', floatArg('--scale-base', 1))
    .option('--geometry <base:long>', "derive the bases that keep the paper's wavelength geometry at BASE -> LONG tokens (e.g. 256:2048) instead of printing a table")
    .option('--json', 'print JSON', false)
    .action((o: RopeOptions) => {
      if (o.geometry !== undefined) {
        const [baseLen, longLen] = parseGeometry(o.geometry);
        const g = scaledGeometry(baseLen, longLen, o.headDim);
        process.stdout.write(o.json ? JSON.stringify(g, null, 2) + '\n' : geometryLines(g).join('\n') + '\n');
        return;
      }
      const p = o.from ? ropeParamsOf(readModelConfig(o.from)) : paramsFromFlags(o);
      const seqLen = o.seqLen ?? p.maxPositionEmbeddings;
      const f = ropeFrequencies(p, seqLen);
      const wl = wavelengths(f.invFreq);
      const C = granularity(f.invFreq);
      const paper = paperComparison();
      if (o.json) {
        process.stdout.write(JSON.stringify({
          rope: describeRope(p), seqLen, attentionScaling: f.attentionScaling, granularity: C,
          paper: { base: 10000, headDim: 128, piAlpha: 0.25, abfBeta: 50, ...paper },
          pairs: Array.from(f.invFreq, (v, i) => ({ i, invFreq: v, wavelength: wl[i], xposZeta: f.xposZeta?.[i] ?? null })),
        }, null, 2) + '\n');
        return;
      }
      const out: string[] = [];
      out.push(`rope ${describeRope(p)}, head_dim ${p.headDim}, at sequence length ${seqLen}; attention scaling ${f.attentionScaling.toPrecision(6)}`);
      out.push(`${'pair'.padStart(5)}  ${'inv_freq'.padStart(12)}  ${'wavelength (tokens)'.padStart(20)}${f.xposZeta ? '  xpos zeta'.padStart(12) : ''}`);
      for (let i = 0; i < f.invFreq.length; i++) {
        out.push(`${String(i).padStart(5)}  ${f.invFreq[i]!.toExponential(5).padStart(12)}  ${wl[i]!.toFixed(1).padStart(20)}${f.xposZeta ? f.xposZeta[i]!.toFixed(5).padStart(12) : ''}`);
      }
      out.push('');
      out.push(`granularity C_d = mean_j sin(theta_j) = ${C.toFixed(4)}  (paper App. B; larger = consecutive positions further apart)`);
      out.push(`paper's comparison, b=10,000: PI alpha=1/4 -> ${paper.pi.toFixed(4)} at d=128, limit alpha/ln b = ${paper.piLimit.toFixed(4)} (paper ~0.027);`);
      out.push(`                              ABF beta=50 -> ${paper.abf.toFixed(4)} at d=128, limit 1/ln(b*beta) = ${paper.abfLimit.toFixed(4)} (paper ~0.076)`);
      process.stdout.write(out.join('\n') + '\n');
    });
}
