// Rotary position embeddings: every variant we compare, built by one factory.
//
// RoPE rotates each pair (x_i, x_{i+HS/2}) of a query/key head (HF's rotate-half layout) by the angle
// pos * invFreq[i]. Every "long-context" trick in the literature is a different choice of invFreq
// (and sometimes an amplitude on cos/sin):
//   default   invFreq[i] = theta^(-2i/HS). RoPE ABF (Xiong et al. 2023, "Llama 2 Long") is only a bigger
//             theta (10,000 -> 500,000), so it needs no rope_scaling entry at all.
//   linear    position interpolation (PI): invFreq / factor.
//   ntk       static NTK-aware: theta' = theta * factor^(HS/(HS-2)).
//   dynamic   NTK with theta' recomputed from the current sequence length once it passes max_pos.
//   yarn      per-pair blend of interpolated and original frequencies + attention temperature.
//   llama3    Llama 3.1: keep high frequencies, divide low ones by factor, smooth ramp in between.
//   longrope  per-pair rescale lists (short / long), chosen by sequence length, + attention factor.
//   xpos      Sun et al. 2022 (torchscale): RoPE plus a per-pair exponential decay in |m - n|.
// Config keys and formulas follow Hugging Face transformers' modeling_rope_utils.py (the
// `_compute_*_parameters` and `_validate_*` functions, 4.5x series), except that we compute in
// float64 (HF builds invFreq in float32) and that invalid values are errors here, where HF only warns.
//
// Dimension names: HS head size, T sequence; "pair i" is 0..HS/2-1.

export type RopeScaling =
  | { rope_type: 'linear'; factor: number }
  | { rope_type: 'ntk'; factor: number }
  | { rope_type: 'dynamic'; factor: number; original_max_position_embeddings?: number }
  | {
      rope_type: 'yarn';
      factor: number;
      original_max_position_embeddings?: number;
      beta_fast?: number;
      beta_slow?: number;
      attention_factor?: number;
      mscale?: number;
      mscale_all_dim?: number;
      truncate?: boolean;
    }
  | { rope_type: 'llama3'; factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number }
  | {
      rope_type: 'longrope';
      short_factor: number[];
      long_factor: number[];
      factor?: number;
      original_max_position_embeddings?: number;
      attention_factor?: number;
    }
  | { rope_type: 'xpos'; scale_base: number };
// 'default' rope_type (or absent rope_scaling) is represented as null.

export type RopeType = RopeScaling['rope_type'];

// ---------------------------------------------------------------------------------------------
// Parsing config.json's `rope_scaling`

type KeyKind = 'factor' | 'positive' | 'any' | 'integer' | 'boolean' | 'list';

/** Keys each rope_type accepts (after `rope_type`/`type`), with how each is checked. Order = JSON order. */
const KEYS: { [K in RopeType]: { required: Record<string, KeyKind>; optional: Record<string, KeyKind> } } = {
  linear: { required: { factor: 'factor' }, optional: {} },
  ntk: { required: { factor: 'factor' }, optional: {} },
  // HF accepts original_max_position_embeddings for dynamic but its formula still uses max_position_embeddings.
  dynamic: { required: { factor: 'factor' }, optional: { original_max_position_embeddings: 'integer' } },
  yarn: {
    required: { factor: 'factor' },
    optional: {
      original_max_position_embeddings: 'integer',
      beta_fast: 'positive',
      beta_slow: 'positive',
      attention_factor: 'positive',
      mscale: 'any',
      mscale_all_dim: 'any',
      truncate: 'boolean',
    },
  },
  llama3: {
    required: { factor: 'factor', low_freq_factor: 'positive', high_freq_factor: 'positive', original_max_position_embeddings: 'integer' },
    optional: {},
  },
  longrope: {
    required: { short_factor: 'list', long_factor: 'list' },
    optional: { factor: 'factor', original_max_position_embeddings: 'integer', attention_factor: 'positive' },
  },
  xpos: { required: { scale_base: 'positive' }, optional: {} },
};

const TYPE_NAMES = ['default', ...Object.keys(KEYS)] as const;

function describeKind(kind: KeyKind, half: number): string {
  switch (kind) {
    case 'factor': return 'a number >= 1';
    case 'positive': return 'a number > 0';
    case 'any': return 'a finite number';
    case 'integer': return 'a positive integer';
    case 'boolean': return 'true or false';
    case 'list': return `a list of ${half} numbers > 0 (head_dim/2)`;
  }
}

/**
 * Parse and validate a config.json `rope_scaling` value. Accepts HF's `rope_type` and the legacy `type` key
 * ("su" is the old name of "longrope", as in HF). Returns null for null/undefined/{rope_type:"default"}.
 * Throws a one-line Error naming `${where}.rope_scaling.<key>` and what is allowed.
 */
export function parseRopeScaling(raw: unknown, headDim: number, where: string): RopeScaling | null {
  const at = `${where}.rope_scaling`;
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new Error(`${at} must be null or an object with a "rope_type" key, got ${JSON.stringify(raw)}`);
  }
  const obj = raw as Record<string, unknown>;
  const allowedTypes = TYPE_NAMES.map((t) => JSON.stringify(t)).join(', ');

  // `type` is the pre-4.43 spelling of `rope_type`; HF reads rope_type first.
  const typeKey = obj.rope_type !== undefined ? 'rope_type' : 'type';
  const given = obj[typeKey];
  if (given === undefined) throw new Error(`${at}.rope_type is missing (allowed: ${allowedTypes})`);
  if (typeof given !== 'string') throw new Error(`${at}.${typeKey} must be a string (allowed: ${allowedTypes}), got ${JSON.stringify(given)}`);
  const alias = (v: unknown): unknown => (v === 'su' ? 'longrope' : v);
  if (obj.rope_type !== undefined && obj.type !== undefined && alias(obj.type) !== alias(obj.rope_type)) {
    throw new Error(`${at}.type (${JSON.stringify(obj.type)}) disagrees with rope_type (${JSON.stringify(obj.rope_type)}); keep one`);
  }
  const name = alias(given) as string; // "su" is Phi-3's original name for longrope, renamed by HF
  if (name === 'default') {
    for (const key of Object.keys(obj)) {
      if (key !== 'rope_type' && key !== 'type') throw new Error(`${at}.${key} is not a key of rope_type "default" (it takes none)`);
    }
    return null;
  }
  if (!Object.hasOwn(KEYS, name)) throw new Error(`${at}.${typeKey}: unknown value ${JSON.stringify(name)} (allowed: ${allowedTypes})`);
  const type = name as RopeType;
  const spec = KEYS[type];
  const half = headDim / 2;

  const known = new Set(['rope_type', 'type', ...Object.keys(spec.required), ...Object.keys(spec.optional)]);
  for (const key of Object.keys(obj)) {
    if (!known.has(key)) {
      const allowed = [...Object.keys(spec.required), ...Object.keys(spec.optional)].join(', ');
      throw new Error(`${at}.${key} is not a key of rope_type "${type}" (allowed: ${allowed})`);
    }
  }

  // Values are checked by kind; optional keys given as null count as absent (HF's `.get(k) or default`).
  const out: Record<string, unknown> = { rope_type: type };
  const read = (key: string, kind: KeyKind, required: boolean): void => {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) throw new Error(`${at}.${key} is missing; rope_type "${type}" requires it (${describeKind(kind, half)})`);
      return;
    }
    const bad = (): never => {
      throw new Error(`${at}.${key} must be ${describeKind(kind, half)}, got ${JSON.stringify(v)}`);
    };
    switch (kind) {
      case 'boolean':
        if (typeof v !== 'boolean') bad();
        out[key] = v;
        return;
      case 'list': {
        if (!Array.isArray(v) || v.length !== half) bad();
        const list = v as unknown[];
        for (const x of list) if (typeof x !== 'number' || !Number.isFinite(x) || !(x > 0)) bad();
        out[key] = (list as number[]).slice();
        return;
      }
      default: {
        if (typeof v !== 'number' || !Number.isFinite(v)) bad();
        const n = v as number;
        if (kind === 'factor' && !(n >= 1)) bad();
        if (kind === 'positive' && !(n > 0)) bad();
        if (kind === 'integer' && !(Number.isInteger(n) && n > 0)) bad();
        out[key] = n;
      }
    }
  };
  for (const [key, kind] of Object.entries(spec.required)) read(key, kind, true);
  for (const [key, kind] of Object.entries(spec.optional)) read(key, kind, false);

  // Relations between keys (HF warns on these; a silent wrong model is worse than an error).
  if (type === 'yarn') {
    const fast = (out.beta_fast as number | undefined) ?? 32;
    const slow = (out.beta_slow as number | undefined) ?? 1;
    if (fast < slow) {
      throw new Error(`${at}.beta_fast (${fast}) must be >= beta_slow (${slow}); defaults are beta_fast=32, beta_slow=1`);
    }
  }
  if (type === 'llama3' && !((out.high_freq_factor as number) > (out.low_freq_factor as number))) {
    throw new Error(`${at}.high_freq_factor (${String(out.high_freq_factor)}) must be > low_freq_factor (${String(out.low_freq_factor)})`);
  }
  if (type === 'longrope' && out.factor === undefined && out.original_max_position_embeddings === undefined && out.attention_factor === undefined) {
    throw new Error(`${at}.factor is missing; rope_type "longrope" needs factor (a number >= 1), original_max_position_embeddings or attention_factor`);
  }
  return out as RopeScaling;
}

/** Back to the HF JSON form (with `rope_type`), for writing config.json. */
export function ropeScalingToJSON(s: RopeScaling | null): Record<string, unknown> | null {
  if (s === null) return null;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(s)) {
    if (value !== undefined) out[key] = Array.isArray(value) ? value.slice() : value;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Frequencies

export interface RopeParams { headDim: number; theta: number; scaling: RopeScaling | null; maxPositionEmbeddings: number }
export interface RopeFrequencies {
  invFreq: Float64Array; // (HS/2) angular frequency per rotated pair, radians per position
  attentionScaling: number; // multiplies cos and sin (HF: cos = cos * attention_scaling), so logits get its square
  xposZeta: Float64Array | null; // (HS/2) per-pair xPos decay base, or null
  xposScaleBase: number; // 0 when no xpos
  xposCentre: number; // position where the xPos q and k scales are both 1
}

/** theta^(-2i/HS) for each pair: the original RoPE frequencies. */
function baseInvFreq(theta: number, HS: number): Float64Array {
  const inv = new Float64Array(HS / 2); // (HS/2)
  for (let i = 0; i < HS / 2; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / HS);
  return inv;
}

/** YaRN's attention temperature term: 0.1 * m * ln(s) + 1, and 1 when not extending. */
function yarnMscale(scale: number, m = 1): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

/** Static NTK's base: exactly a bigger plain base, theta * factor^(HS/(HS-2)) (what config.json and GGUF files carry for it). */
export function ntkTheta(theta: number, factor: number, headDim: number): number {
  return theta * Math.pow(factor, headDim / (headDim - 2));
}

/**
 * invFreq and amplitude for a RoPE config. `seqLen` is the total sequence length being processed
 * (only `dynamic` and `longrope` depend on it).
 */
export function ropeFrequencies(p: RopeParams, seqLen: number): RopeFrequencies {
  const HS = p.headDim;
  if (!(Number.isInteger(HS) && HS >= 2 && HS % 2 === 0)) throw new Error(`rope: headDim must be a positive even integer, got ${HS}`);
  if (!(p.theta > 0 && Number.isFinite(p.theta))) throw new Error(`rope: theta must be a number > 0, got ${p.theta}`);
  if (!(p.maxPositionEmbeddings > 0)) throw new Error(`rope: maxPositionEmbeddings must be > 0, got ${p.maxPositionEmbeddings}`);
  const half = HS / 2;
  const maxPos = p.maxPositionEmbeddings;
  const freqs: RopeFrequencies = { invFreq: baseInvFreq(p.theta, HS), attentionScaling: 1, xposZeta: null, xposScaleBase: 0, xposCentre: 0 };
  const s = p.scaling;
  if (s === null) return freqs;

  switch (s.rope_type) {
    case 'linear': {
      // Dividing every frequency by `factor` is the same as dividing positions by it (PI).
      for (let i = 0; i < half; i++) freqs.invFreq[i]! /= s.factor;
      return freqs;
    }
    case 'ntk': {
      // The exponent HS/(HS-2) makes the lowest pair's frequency fall by exactly `factor`, while the
      // highest pair (i=0) keeps frequency 1: interpolate the slow pairs, extrapolate the fast ones.
      freqs.invFreq = baseInvFreq(ntkTheta(p.theta, s.factor, HS), HS);
      return freqs;
    }
    case 'dynamic': {
      // Like HF: the base grows only once the sequence is longer than max_position_embeddings; below
      // that this is plain RoPE. (HF ignores original_max_position_embeddings here, and so do we.)
      const L = Math.max(seqLen, maxPos);
      const base = p.theta * Math.pow((s.factor * L) / maxPos - (s.factor - 1), HS / (HS - 2));
      freqs.invFreq = baseInvFreq(base, HS);
      return freqs;
    }
    case 'yarn': {
      const factor = s.factor; // HF (4.5x) uses the explicit factor even when max_pos/orig disagrees
      const orig = s.original_max_position_embeddings ?? maxPos;
      if (s.attention_factor !== undefined) {
        freqs.attentionScaling = s.attention_factor;
      } else if (s.mscale && s.mscale_all_dim) {
        // DeepSeek-style: the ratio of two temperatures (the all-dim one is applied in the softmax scale).
        freqs.attentionScaling = yarnMscale(factor, s.mscale) / yarnMscale(factor, s.mscale_all_dim);
      } else {
        freqs.attentionScaling = yarnMscale(factor);
      }
      const betaFast = s.beta_fast || 32;
      const betaSlow = s.beta_slow || 1;
      // Pair index (in units of HS-dims, HF's convention) whose wavelength fits `rotations` turns into orig.
      const correctionDim = (rotations: number): number =>
        (HS * Math.log(orig / (rotations * 2 * Math.PI))) / (2 * Math.log(p.theta));
      let low = correctionDim(betaFast);
      let high = correctionDim(betaSlow);
      if (s.truncate ?? true) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, HS - 1); // HF clamps to dim-1, not HS/2-1; kept for parity
      if (low === high) high += 0.001; // avoid 0/0 in the ramp
      for (let i = 0; i < half; i++) {
        // ramp 0 for fast pairs (i <= low: keep, extrapolate) .. 1 for slow pairs (i >= high: interpolate)
        const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
        const extrap = freqs.invFreq[i]!;
        const interp = extrap / factor;
        freqs.invFreq[i] = interp * ramp + extrap * (1 - ramp);
      }
      return freqs;
    }
    case 'llama3': {
      const orig = s.original_max_position_embeddings;
      const lowFreqWavelen = orig / s.low_freq_factor; // longer waves than this: fully interpolated
      const highFreqWavelen = orig / s.high_freq_factor; // shorter waves than this: untouched
      for (let i = 0; i < half; i++) {
        const inv = freqs.invFreq[i]!;
        const wavelen = (2 * Math.PI) / inv;
        if (wavelen < highFreqWavelen) continue;
        if (wavelen > lowFreqWavelen) {
          freqs.invFreq[i] = inv / s.factor;
        } else {
          const smooth = (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
          freqs.invFreq[i] = (1 - smooth) * (inv / s.factor) + smooth * inv;
        }
      }
      return freqs;
    }
    case 'longrope': {
      if (s.short_factor.length !== half || s.long_factor.length !== half) {
        throw new Error(`rope: longrope short_factor/long_factor must have ${half} entries (headDim/2), got ${s.short_factor.length}/${s.long_factor.length}`);
      }
      // Phi-3 style: when the pretraining length is given, the scale is the ratio of context lengths.
      let factor = s.factor ?? 1;
      let orig = maxPos;
      if (s.original_max_position_embeddings !== undefined) {
        orig = s.original_max_position_embeddings;
        factor = maxPos / orig;
      }
      if (s.attention_factor !== undefined) freqs.attentionScaling = s.attention_factor;
      else freqs.attentionScaling = factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig));
      const ext = seqLen > orig ? s.long_factor : s.short_factor;
      for (let i = 0; i < half; i++) freqs.invFreq[i]! /= ext[i]!;
      return freqs;
    }
    case 'xpos': {
      // torchscale's per-pair decay base, in (0.29, 1): fast pairs decay most, slow pairs barely.
      const zeta = new Float64Array(half); // (HS/2)
      for (let i = 0; i < half; i++) zeta[i] = (2 * i + 0.4 * HS) / (1.4 * HS);
      freqs.xposZeta = zeta;
      freqs.xposScaleBase = s.scale_base;
      // Only m - n enters q.k, so any centre works; a fixed one (not the current length, as torchscale
      // uses) keeps cached keys valid as the sequence grows, and mid-context keeps exponents small.
      freqs.xposCentre = Math.floor(maxPos / 2);
      return freqs;
    }
    default: {
      const unknown: never = s;
      throw new Error(`rope: unknown rope_type ${JSON.stringify((unknown as { rope_type: unknown }).rope_type)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Tables

/** Rotation tables for positions [pos0, pos0+count); each buffer (count, HS/2). */
export interface RopeTablesOf<A extends Float32Array | Float64Array> {
  qCos: A; // (count, HS/2) cos(pos*invFreq[i]) * attentionScaling * zeta_i^((pos-c)/scale_base)
  qSin: A; // (count, HS/2)
  kCos: A; // (count, HS/2) same with zeta_i^(-(pos-c)/scale_base); equal to qCos without xpos
  kSin: A; // (count, HS/2)
  half: number; // HS/2
  count: number;
  pos0: number;
}
export interface RopeTables extends RopeTablesOf<Float32Array> {}
export interface RopeTables64 extends RopeTablesOf<Float64Array> {}

function buildTables<A extends Float32Array | Float64Array>(
  ctor: new (n: number) => A,
  p: RopeParams,
  pos0: number,
  count: number,
  seqLen: number,
): RopeTablesOf<A> {
  if (!(Number.isInteger(pos0) && pos0 >= 0 && Number.isInteger(count) && count >= 0)) {
    throw new RangeError(`rope: pos0 and count must be integers >= 0, got pos0=${pos0} count=${count}`);
  }
  const f = ropeFrequencies(p, seqLen);
  const half = p.headDim / 2;
  const qCos = new ctor(count * half); // (count, HS/2)
  const qSin = new ctor(count * half); // (count, HS/2)
  const kCos = new ctor(count * half); // (count, HS/2)
  const kSin = new ctor(count * half); // (count, HS/2)
  const a = f.attentionScaling;
  // Smallest normal of the output type: xPos amplitudes far from the centre must neither overflow nor
  // flush to zero, or q.k silently becomes Inf*0.
  const tiny = ctor === (Float32Array as unknown) ? 1.1754943508222875e-38 : 2.2250738585072014e-308;
  const huge = ctor === (Float32Array as unknown) ? 3.4028234663852886e38 : Number.MAX_VALUE;
  for (let t = 0; t < count; t++) {
    const pos = pos0 + t;
    const e = f.xposZeta ? (pos - f.xposCentre) / f.xposScaleBase : 0;
    for (let i = 0; i < half; i++) {
      const angle = pos * f.invFreq[i]!; // float64, so large positions keep their phase
      const c = Math.cos(angle) * a;
      const s = Math.sin(angle) * a;
      let qs = 1;
      let ks = 1;
      if (f.xposZeta) {
        qs = Math.pow(f.xposZeta[i]!, e);
        ks = Math.pow(f.xposZeta[i]!, -e);
        if (!(Math.min(qs, ks) * a >= tiny && Math.max(qs, ks) * a <= huge)) {
          throw new RangeError(
            `rope: xpos scale zeta^(±${e.toFixed(1)}) at position ${pos} is out of ${ctor.name} range; ` +
              `keep |pos - ${f.xposCentre}| smaller or raise scale_base (${f.xposScaleBase})`,
          );
        }
      }
      const j = t * half + i;
      qCos[j] = c * qs;
      qSin[j] = s * qs;
      kCos[j] = c * ks;
      kSin[j] = s * ks;
    }
  }
  return { qCos, qSin, kCos, kSin, half, count, pos0 };
}

/**
 * Float32 rotation tables for positions [pos0, pos0+count), amplitude folded in (angle computed in float64).
 * `seqLen` is passed to ropeFrequencies (default pos0+count).
 */
export function ropeTables(p: RopeParams, pos0: number, count: number, seqLen?: number): RopeTables {
  return buildTables(Float32Array, p, pos0, count, seqLen ?? pos0 + count);
}

/** Float64 variant of ropeTables (same layout), for float64 reference runs and gradient checks. */
export function ropeTables64(p: RopeParams, pos0: number, count: number, seqLen?: number): RopeTables64 {
  return buildTables(Float64Array, p, pos0, count, seqLen ?? pos0 + count);
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

/**
 * Appendix B "embedding granularity" of the paper, as a mean over pairs j of sin(invFreq_j) (unit position
 * step): the bound on the sine similarity of consecutive positions. Larger = consecutive positions are
 * easier to tell apart. With b=10,000, HS=128: RoPE 0.109, ABF beta=50 (base 500,000) 0.0788,
 * PI alpha=1/4 0.0290. The paper quotes ~0.076 and ~0.027: its large-d approximations
 * 1/(ln b + ln beta) and alpha/ln b, not the finite-d sum.
 */
export function granularity(invFreq: Float64Array): number {
  if (invFreq.length === 0) return 0;
  let sum = 0;
  for (let j = 0; j < invFreq.length; j++) sum += Math.sin(invFreq[j]!);
  return sum / invFreq.length;
}

/** Wavelength in tokens per pair: 2*pi/invFreq. */
export function wavelengths(invFreq: Float64Array): Float64Array {
  const out = new Float64Array(invFreq.length); // (HS/2)
  for (let i = 0; i < invFreq.length; i++) out[i] = (2 * Math.PI) / invFreq[i]!;
  return out;
}

/** Short human description, e.g. "yarn(factor=4, orig=2048)"; theta is shown when it is not 10,000. */
export function describeRope(p: RopeParams): string {
  const s = p.scaling;
  const theta = p.theta === 10000 ? [] : [`theta=${p.theta}`];
  const fmt = (name: string, parts: string[]): string => `${name}(${[...parts, ...theta].join(', ')})`;
  if (s === null) return `rope(theta=${p.theta})`;
  switch (s.rope_type) {
    case 'linear':
    case 'ntk':
      return fmt(s.rope_type, [`factor=${s.factor}`]);
    case 'dynamic':
      return fmt('dynamic', [`factor=${s.factor}`, `orig=${p.maxPositionEmbeddings}`]);
    case 'yarn':
      return fmt('yarn', [`factor=${s.factor}`, `orig=${s.original_max_position_embeddings ?? p.maxPositionEmbeddings}`]);
    case 'llama3':
      return fmt('llama3', [`factor=${s.factor}`, `low=${s.low_freq_factor}`, `high=${s.high_freq_factor}`, `orig=${s.original_max_position_embeddings}`]);
    case 'longrope':
      return fmt('longrope', [
        s.original_max_position_embeddings !== undefined
          ? `factor=${p.maxPositionEmbeddings / s.original_max_position_embeddings}`
          : `factor=${s.factor ?? 1}`,
        `orig=${s.original_max_position_embeddings ?? p.maxPositionEmbeddings}`,
      ]);
    case 'xpos':
      return fmt('xpos', [`scale_base=${s.scale_base}`]);
    default: {
      const unknown: never = s;
      throw new Error(`rope: unknown rope_type ${JSON.stringify((unknown as { rope_type: unknown }).rope_type)}`);
    }
  }
}
