// longctx library entry point.

export * from './model/config.js';
export * from './model/params.js';
export * from './model/rope.js';
export * from './model/llama.js';
export * from './model/estimate.js';
export type { Backend, AdamWStep } from './kernels/backend.js';
export { IGNORE_INDEX } from './kernels/backend.js';
export { refBackend } from './kernels/ref/index.js';
export * from './train/adamw.js';
export * from './train/schedule.js';
export * from './train/step.js';
export * from './io/safetensors.js';
export * from './io/hf.js';
export { Rng } from './util/rng.js';
export * from './train/checkpoint.js';
export * from './data/index.js';
export * from './train/curriculum.js';
export * from './train/run.js';
export * from './train/trainer.js';
export { pretrain, extend, resume, extendedRope, type PretrainOptions, type ExtendOptions } from './recipes/pretrain.js';
export { selectBackend, loadNativeAddon, nativeBackendFrom } from './kernels/native.js';
export * from './eval/index.js';
export { startServer, DEFAULT_MAX_CONCURRENCY, type ServeOptions, type RunningServer } from './serve/server.js';
export * from './report/index.js';
export * from './io/gguf.js';
export * from './io/gguf-llama.js';
export { LlamaCppEvalModel, openLlamaCppModel, type LlamaCppOptions } from './eval/backends/llamacpp.js';
