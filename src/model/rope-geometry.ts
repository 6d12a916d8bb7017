// The paper's RoPE geometry carried to another scale (issue 20, item 2).
//
// What makes RoPE's base frequency matter is how its wavelengths 2*pi*theta^(2i/d) sit against the
// context length L: a pair whose wavelength exceeds L never completes a turn inside the context, so
// it can only encode coarse, monotone distance. Llama 2 (theta 10,000, d = 128, L = 4,096) has ~30%
// of its pairs beyond L; at 32,768 with the same base only ~7% are, and ABF's theta 500,000 brings
// the share at 32,768 back to ~35%. A laptop run at 256 -> 2,048 with theta 10,000 keeps ~37% of
// its pairs beyond even the LONG length, so "unchanged RoPE" would hardly be stressed.
//
// Keeping the paper's geometry means keeping these shares, not theta. With the continuous share
//   s(theta, L) = 1 - ln(L / 2pi) / ln(theta)        (the fraction of i/(d/2) in [0, 1) beyond L)
// the base that gives share s at length L is theta = exp(ln(L / 2pi) / (1 - s)). Note that it does
// not depend on d; d only sets how finely the share is sampled (d/2 pairs).
// The base model keeps Llama 2's share at its base length; the ABF model keeps Llama 2 Long's share
// at its long length. One power map cannot keep both (4k -> 32k is a smaller step in log L than
// 256 -> 2,048), so the ABF factor at laptop scale comes out smaller than the paper's 50.

/** The paper's setting: Llama 2 at 4,096 with theta 10,000; Llama 2 Long at 32,768 with 500,000. */
export const PAPER_GEOMETRY = { baseLen: 4096, longLen: 32768, baseTheta: 10_000, abfTheta: 500_000, headDim: 128 } as const;

/** Continuous share of RoPE pairs whose wavelength exceeds L tokens, in [0, 1]. */
export function shareBeyond(theta: number, L: number): number {
  if (!(theta > 1) || !(L > 0)) throw new RangeError(`shareBeyond needs theta > 1 and L > 0, got theta ${theta}, L ${L}`);
  return Math.min(1, Math.max(0, 1 - Math.log(L / (2 * Math.PI)) / Math.log(theta)));
}

/** Exact share over the d/2 pairs i = 0 .. d/2-1 (wavelength 2*pi*theta^(2i/d) > L). */
export function pairsBeyond(theta: number, headDim: number, L: number): number {
  let n = 0;
  for (let i = 0; i < headDim / 2; i++) if (2 * Math.PI * Math.pow(theta, (2 * i) / headDim) > L) n++;
  return n / (headDim / 2);
}

/** The base whose continuous share beyond L is `share` (0 <= share < 1). */
export function thetaForShare(share: number, L: number): number {
  if (!(share >= 0 && share < 1)) throw new RangeError(`share must be in [0, 1), got ${share}`);
  if (!(L > 2 * Math.PI)) throw new RangeError(`length must exceed 2*pi, got ${L}`);
  return Math.exp(Math.log(L / (2 * Math.PI)) / (1 - share));
}

/** Rounds to two significant digits (190, 7,100): the derived bases are a choice, not a measurement. */
export function twoSignificant(x: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(x)) - 1);
  return Math.round(x / p) * p;
}

export interface ScaledGeometry {
  baseLen: number;
  longLen: number;
  headDim: number;
  /** the paper's shares: Llama 2 at its base length, Llama 2 Long (ABF) and unchanged RoPE at the long length */
  paper: { baseShare: number; abfShareLong: number; ropeShareLong: number };
  /** derived (rounded to two significant digits) */
  baseTheta: number;
  abfTheta: number;
  /** the ABF factor abfTheta / baseTheta (paper: 50) */
  abfFactor: number;
  /** the shares the rounded bases give, continuous and over this head size's pairs */
  ours: { baseShare: number; abfShareLong: number; ropeShareLong: number; basePairs: number; abfPairsLong: number; ropePairsLong: number };
}

/** The paper's wavelength shares carried to baseLen -> longLen (the derivation is in the file header). */
export function scaledGeometry(baseLen: number, longLen: number, headDim: number): ScaledGeometry {
  if (!(longLen > baseLen)) throw new RangeError(`the long length (${longLen}) must exceed the base length (${baseLen})`);
  const P = PAPER_GEOMETRY;
  const paper = {
    baseShare: shareBeyond(P.baseTheta, P.baseLen),
    abfShareLong: shareBeyond(P.abfTheta, P.longLen),
    ropeShareLong: shareBeyond(P.baseTheta, P.longLen),
  };
  const baseTheta = twoSignificant(thetaForShare(paper.baseShare, baseLen));
  const abfTheta = twoSignificant(thetaForShare(paper.abfShareLong, longLen));
  return {
    baseLen, longLen, headDim, paper, baseTheta, abfTheta, abfFactor: abfTheta / baseTheta,
    ours: {
      baseShare: shareBeyond(baseTheta, baseLen), abfShareLong: shareBeyond(abfTheta, longLen), ropeShareLong: shareBeyond(baseTheta, longLen),
      basePairs: pairsBeyond(baseTheta, headDim, baseLen), abfPairsLong: pairsBeyond(abfTheta, headDim, longLen), ropePairsLong: pairsBeyond(baseTheta, headDim, longLen),
    },
  };
}
