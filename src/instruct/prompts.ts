// The texts of self-instruct (paper §2.2, Appendix D): the two generation prompts, our verification
// prompt, the training-data templates, and the parsers of the generator's answers.
//
// Appendix D publishes only the heads of the generation prompts ("... Wrap the question and answer
// using XML tags ..."); the rest of each prompt here is our completion, marked below. The
// self-critique prompt is not published at all (PAPER.md §1.10): VERIFY_INSTRUCTION is ours. The
// generator sees every prompt as a user turn in the Llama 2 chat format (data/chat-template.ts),
// which adds the [INST] ... [/INST] the appendix shows.

/** Which of the paper's two prompts produced a pair (p = 0.5 each by default). */
export type PromptKind = 'normal' | 'short';

// Verbatim from App. D up to "using XML tags"; the tag names in parentheses are our completion.
const NORMAL_HEAD =
  'You are given a text chunk (delimited by triple quotes) taken from a long text. Write a question about this text and provide the correct answer. ' +
  'The answer needs to be based on the text. This question will later be used as a reading comprehension test over the entire document. ' +
  'Wrap the question and answer using XML tags (<question> and </question>, <answer> and </answer>).';

// The short-answer variant: App. D adds "which can be answered in a few words or a single phrase",
// "without explanation" and "Again, the answer needs to be short."; where they go is our reading.
const SHORT_HEAD =
  'You are given a text chunk (delimited by triple quotes) taken from a long text. Write a question about this text and provide the correct short answer, ' +
  'which can be answered in a few words or a single phrase, without explanation. The answer needs to be based on the text. ' +
  'This question will later be used as a reading comprehension test over the entire document. ' +
  'Wrap the question and answer using XML tags (<question> and </question>, <answer> and </answer>). Again, the answer needs to be short.';

/** The user turn asking the generator for a question-answer pair about `chunk`. */
export function generationPrompt(kind: PromptKind, chunk: string): string {
  return `${kind === 'short' ? SHORT_HEAD : NORMAL_HEAD}\n"""${chunk}"""`;
}

// Ours (the paper's self-critique prompt is unpublished): the generator judges its own pair
// against the chunk it was written from, and must open its reply with yes or no so the verdict
// parses without a second model.
const VERIFY_HEAD =
  'You are given a text chunk (delimited by triple quotes), a question about it and a proposed answer. ' +
  'Check the answer against the text only: is it correct, and is it supported by the text? ' +
  'Reply with "yes" or "no" first, then at most one sentence explaining why.';

/** The user turn asking the generator to verify a pair against its chunk (self-critique). */
export function verifyPrompt(chunk: string, question: string, answer: string): string {
  return `${VERIFY_HEAD}\n"""${chunk}"""\nQuestion: ${question}\nProposed answer: ${answer}`;
}

// Fig. 11's training templates (the text between [INST] and [/INST]); the short variant's sentence is
// PAPER.md's wording, placed after "answer the question in the end".
const LONG_HEAD = 'You are given a long text (delimited by triple quotes) and a question. Read the text and answer the question in the end.';
const LONG_HEAD_SHORT =
  'You are given a long text (delimited by triple quotes) and a question. Read the text and answer the question in the end ' +
  'as concisely as you can, using a single phrase or sentence if possible. Do not provide any explanation.';

/**
 * The user turn of a training instance, in three parts so the document between them can be cut to
 * fit: `${head}${document}${tail}` is Fig. 11's
 * `You are given a long text ... """{FULL_DOCUMENT}""" Question: {QUESTION}`.
 */
export function longInstanceParts(kind: PromptKind, question: string): { head: string; tail: string } {
  return { head: `${kind === 'short' ? LONG_HEAD_SHORT : LONG_HEAD} """`, tail: `""" Question: ${question}` };
}

/** A parsed question-answer pair. */
export interface QAPair {
  question: string;
  answer: string;
}

/**
 * The first <question>...</question> and the first <answer>...</answer> after it (either order is
 * accepted: generators sometimes answer first), trimmed; null when either is missing, unclosed or
 * empty. Tags match case-insensitively; whatever surrounds them is ignored.
 */
export function parseQAPair(text: string): QAPair | null {
  const q = /<question>([\s\S]*?)<\/question>/i.exec(text);
  const a = /<answer>([\s\S]*?)<\/answer>/i.exec(text);
  if (!q || !a) return null;
  const question = q[1]!.trim();
  const answer = a[1]!.trim();
  if (question === '' || answer === '') return null;
  // a tag inside the other's text means the generator nested or repeated them: not a clean pair
  if (/<\/?(question|answer)>/i.test(question) || /<\/?(question|answer)>/i.test(answer)) return null;
  return { question, answer };
}

/** yes / no from the start of the verifier's reply ("Yes.", "**No**, because ..."); 'unclear' otherwise. */
export function parseVerdict(text: string): 'yes' | 'no' | 'unclear' {
  const m = /^[\s"'*`_([]*(yes|no)\b/i.exec(text);
  if (!m) return 'unclear';
  return m[1]!.toLowerCase() === 'yes' ? 'yes' : 'no';
}
