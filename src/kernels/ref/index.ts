// The reference backend: readable loops with float64 accumulation. It is the oracle every fast
// kernel is tested against, and it is never deleted.

import type { Backend } from '../backend.js';
import { matmulForward, matmulBackward } from './matmul.js';
import { rmsnormForward, rmsnormBackward } from './rmsnorm.js';
import { ropeForward, ropeBackward } from './rope.js';
import { attentionForward, attentionBackward } from './attention.js';
import { swigluForward, swigluBackward } from './swiglu.js';
import { embeddingForward, embeddingBackward } from './embedding.js';
import { crossEntropyForward, crossEntropyForwardBackward } from './crossentropy.js';
import { add, accumulate, sumSquares, scale } from './elementwise.js';
import { adamw } from './adamw.js';

export const refBackend: Backend = {
  name: 'ref',
  isa: 'float64',
  threads: 1,
  matmulForward, matmulBackward,
  rmsnormForward, rmsnormBackward,
  ropeForward, ropeBackward,
  attentionForward, attentionBackward,
  swigluForward, swigluBackward,
  embeddingForward, embeddingBackward,
  add, accumulate,
  crossEntropyForward, crossEntropyForwardBackward,
  adamw, sumSquares, scale,
};
