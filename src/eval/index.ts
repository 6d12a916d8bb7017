// longctx evaluation suite: the paper's probes and metrics behind one small model interface.
//
// Stable API:
//   EvalModel (model.ts): name, maxContext, trainedContext?, tokenizer, and async tokenLogprobs(tokens,
//     from?, onProgress?), generate(prompt, maxNew, { stop? }), continuationLogprobs?(context, conts);
//     info?, concurrency?
//   openLocalModel(dir, { chunk?, maxContext?, backend? }) / new LocalEvalModel(model, tokenizer, opts)
//   openOpenAIModel(url, { tokenizer?, apiKey?, concurrency?, retries?, timeoutMs? }): an OpenAI-compatible server
//   metrics.ts: normalizeAnswer, exactMatch, tokenF1, maxOverReferences, rougeN, rougeL, rouge,
//     rougeGeoMean, corpusRouge, pickChoice, choiceAccuracy, stringMatchAll, stringMatchPart
//   powerlaw.ts: fitPowerLaw(c[], L[], { loss?, fScale?, gammaMin?, window? }) -> { alpha, beta, gamma, r2, factor, window, flags };
//     powerLawMean(c, fit): what the fit predicts for a point (the law's mean over c .. c+window-1);
//     assessFit(fit, c[], L[]) -> { status: ok / flat / failed, reason }
//   probes/copy.ts: copyExamples / copyTask: repeated-span loss by distance (first vs second copy)
//   probes/*: xxxExamples(tokenizer, ...) (seeded prompts at exact token lengths), scoreXxx(output, ...),
//     xxxTask(model, ...) -> PreparedTask (work, maxSeq, async run(tick)); mapLimit
//   run.ts: prepareEvaluation(model, settings, inputs) / evaluate(...) -> Promise<EvalResults> (results.json)

export * from './model.js';
export { LocalEvalModel, openLocalModel, DEFAULT_CHUNK, type LocalModelOptions } from './backends/local.js';
export { OpenAIEvalModel, openOpenAIModel, ApiClient, HttpError, PromptLogprobsUnsupported, apiBase, isServerUrl, LOGPROB_TASKS, GENERATION_TASKS, type OpenAIModelOptions } from './backends/openai.js';
export * from './metrics.js';
export * from './powerlaw.js';
export * from './memory.js';
export * from './task.js';
export { deriveSeed, continuationTokens, concatTokens, bosTokens, splitSentences, buildHaystack, insertAtDepths, firstLine, answerText, newlineIds, distinctWords, defaultLengths, type Haystack, type Insertion } from './text.js';
export { openCorpus, corpusFromTexts, type EvalCorpus, type TextDoc, type TokenDoc } from './corpus.js';
export { readJsonl, JsonlError } from '../util/jsonl.js';
export * from './probes/ppl.js';
export * from './probes/copy.js';
export * from './probes/first-sentence.js';
export * from './probes/passkey.js';
export * from './probes/needle.js';
export * from './probes/ruler.js';
export * from './probes/qa.js';
export * from './probes/mc.js';
export * from './run.js';
export { formatSummary } from './summary.js';
