// Chat templates: how a conversation becomes token ids, for /v1/chat/completions, `longctx chat` and
// instruction tuning.
//
// A model folder's tokenizer_config.json may carry a Jinja `chat_template` (Llama 3's header tokens,
// ChatML's <|im_start|>, Mistral's [INST], ...). It is rendered as transformers' apply_chat_template
// renders it (@huggingface/jinja, the Jinja subset Hugging Face's own JavaScript libraries use for
// this): `messages`, `bos_token`, `eos_token`, `add_generation_prompt`, `raise_exception`; the text is
// then encoded with special tokens recognised, as transformers tokenizes a rendered chat.
//
// Without a template, or with exactly the Llama 2 one (what Meta's Llama-2-chat folders and our
// instruction-tuned models carry), the Llama 2 format is built natively, in ids, as Meta's reference
// code (llama/generation.py, chat_completion) does:
//
//   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user 1} [/INST] {assistant 1} </s><s>[INST] {user 2} [/INST]
//
// The system message is folded into the first user turn, every turn's text is stripped at its ends,
// and BOS/EOS are ids rather than text (a message cannot forge them). longctx's base models have no
// chat tuning, so for them the format only shapes the prompt.

import { Template } from '@huggingface/jinja';
import { concatTokens, continuationTokens } from './tokenizer/pieces.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

const B_INST = '[INST]', E_INST = '[/INST]';
const B_SYS = '<<SYS>>\n', E_SYS = '\n<</SYS>>\n\n';

/** A template error names the message: the server turns it into a 400. */
export class ChatTemplateError extends Error {
  constructor(message: string, readonly param: string) {
    super(message);
  }
}

/**
 * The Jinja chat_template of meta-llama/Llama-2-*-chat-hf's tokenizer_config.json, character for
 * character (the "\\n" are backslash-n inside Jinja string literals). It renders the same text as
 * llama2ChatTokens; we write it into the tokenizer_config.json of instruction-tuned models so other
 * tools (transformers' apply_chat_template) format chats the way the model was trained.
 */
export const LLAMA2_CHAT_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  '{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}' +
  "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

/** A tokenizer_config.json chat_template we cannot render. */
export class UnsupportedChatTemplateError extends Error {
  override name = 'UnsupportedChatTemplateError';
}

/** The chat template text of a tokenizer_config.json (a string, or the "default" of a list), or null (what GGUF export writes). */
export function chatTemplateText(tokenizerConfig: Record<string, unknown> | null | undefined): string | null {
  try {
    return templateText(tokenizerConfig, 'tokenizer_config.json');
  } catch {
    return null;
  }
}

/** The template text of tokenizer_config.json (a string, or the "default" of a list of named ones), or null. */
function templateText(tokenizerConfig: Record<string, unknown> | null | undefined, where: string): string | null {
  const t = tokenizerConfig?.chat_template;
  if (t === undefined || t === null) return null;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const d = t.find((x) => typeof x === 'object' && x !== null && (x as { name?: unknown }).name === 'default');
    const text = (d as { template?: unknown } | undefined)?.template;
    if (typeof text === 'string') return text;
    throw new UnsupportedChatTemplateError(`${where}: chat_template is a list of named templates without a "default" one; longctx renders the default`);
  }
  throw new UnsupportedChatTemplateError(`${where}: chat_template is ${JSON.stringify(t).slice(0, 40)}, not a Jinja string`);
}

/**
 * Which chat format a model folder's tokenizer_config.json asks for: 'llama2' when it has no
 * chat_template or exactly LLAMA2_CHAT_TEMPLATE (rendered natively), 'jinja' otherwise; a template
 * that does not parse throws a one-line UnsupportedChatTemplateError naming `where`.
 */
export function chatTemplateOf(tokenizerConfig: Record<string, unknown> | null | undefined, where = 'tokenizer_config.json'): 'llama2' | 'jinja' {
  const t = templateText(tokenizerConfig, where);
  if (t === null || t.trim() === LLAMA2_CHAT_TEMPLATE) return 'llama2';
  try {
    new Template(t);
  } catch (e) {
    throw new UnsupportedChatTemplateError(`${where}: chat_template does not parse as Jinja (${String((e as Error).message).split('\n')[0]}); fix or remove it`);
  }
  return 'jinja';
}

/** How one model turns conversations into ids (chatFormat). */
export interface ChatFormat {
  kind: 'llama2' | 'jinja';
  /** the ids of a conversation ready for the assistant's answer (the last message is the user's) */
  prompt(messages: ChatMessage[]): Int32Array;
  /** a conversation that ends with the assistant's answer: its ids, and 1 on the assistant's tokens and the end of each of its turns */
  training(messages: ChatMessage[]): { tokens: Int32Array; loss: Uint8Array };
  /** ids besides EOS that end an assistant's turn (Llama 3's <|eot_id|>, ChatML's <|im_end|>): generation stops there */
  stopIds: number[];
  /**
   * One user turn `head` + DOCUMENT + `tail` and the assistant's `answer`, in three id pieces around
   * the document (encoded by the caller, cut to fit): `head` (BOS and the turn's start), `tail`
   * (to the start of the answer) and `answer` (with the end of the turn). Self-instruct long
   * examples are built from them.
   */
  longParts(head: string, tail: string, answer: string): { head: Int32Array; tail: Int32Array; answer: Int32Array };
}

/** The chat format of a model: its tokenizer and tokenizer_config.json (see chatTemplateOf). */
export function chatFormat(tok: Tokenizer, tokenizerConfig: Record<string, unknown> | null | undefined, where = 'tokenizer_config.json'): ChatFormat {
  if (chatTemplateOf(tokenizerConfig, where) === 'llama2') {
    return { kind: 'llama2', prompt: (m) => llama2ChatTokens(tok, m), training: (m) => llama2TrainingTokens(tok, m), stopIds: [], longParts: (h, t, a) => llama2LongParts(tok, h, t, a) };
  }
  return jinjaFormat(tok, new Template(templateText(tokenizerConfig, where)!), tokenizerConfig ?? {});
}

/** A special token named in tokenizer_config.json (a string or {content}), else the tokenizer's own. */
function specialText(cfg: Record<string, unknown>, key: string, tok: Tokenizer, id: number): string {
  const v = cfg[key];
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return id >= 0 ? tok.idToToken(id) ?? '' : '';
}

function jinjaFormat(tok: Tokenizer, template: Template, cfg: Record<string, unknown>): ChatFormat {
  const bos = specialText(cfg, 'bos_token', tok, tok.bosId), eos = specialText(cfg, 'eos_token', tok, tok.eosId);
  const render = (messages: ChatMessage[], addGenerationPrompt: boolean): string => {
    if (messages.length === 0) throw new ChatTemplateError('messages is empty; send at least one {"role": "user", "content": ...}', 'messages');
    try {
      return template.render({ messages: messages.map((m) => ({ role: m.role, content: m.content })), bos_token: bos, eos_token: eos, add_generation_prompt: addGenerationPrompt });
    } catch (e) {
      // raise_exception's message (roles out of order, a system message where none is allowed, ...)
      throw new ChatTemplateError(`the model's chat template refused the conversation: ${String((e as Error).message).split('\n')[0]}`, 'messages');
    }
  };
  const encode = (text: string): Int32Array => tok.encode(text, { splitSpecial: true });
  /** `text` encoded once, and for each cut (a character position) the number of its ids that lie before it */
  const encodeWithCuts = (text: string, cuts: number[]): { ids: Int32Array; at: number[] } => {
    const ids = encode(text);
    // a merge across a cut puts its token after the cut (the longest common prefix with the text before it)
    const at = cuts.map((c) => {
      const head = encode(text.slice(0, c));
      let n = 0;
      while (n < head.length && n < ids.length && head[n] === ids[n]) n++;
      return n;
    });
    return { ids, at };
  };
  const training = (messages: ChatMessage[]): { tokens: Int32Array; loss: Uint8Array } => {
    if (messages[messages.length - 1]?.role !== 'assistant') throw new ChatTemplateError('the last message must be from the assistant (the answer to train on)', `messages[${messages.length - 1}].role`);
    // each assistant turn is what its message adds to the rendering of the conversation before it
    // with the generation prompt: the template's own boundary, so no text is guessed
    const all = render(messages, false);
    const cuts: number[] = [];
    for (let k = 0; k < messages.length; k++) {
      if (messages[k]!.role !== 'assistant') continue;
      const before = render(messages.slice(0, k), true);
      const through = render(messages.slice(0, k + 1), false);
      if (!through.startsWith(before) || !all.startsWith(through) || (cuts.length > 0 && before.length < cuts[cuts.length - 1]!)) {
        throw new ChatTemplateError(`the model's chat template renders messages[${k}] by changing the text before it, so its answer cannot be told from the prompt for training`, `messages[${k}]`);
      }
      cuts.push(before.length, through.length);
    }
    const { ids, at } = encodeWithCuts(all, cuts);
    const loss = new Uint8Array(ids.length);
    for (let c = 0; c < at.length; c += 2) loss.fill(1, at[c]!, at[c + 1]!);
    return { tokens: ids, loss };
  };
  const longParts = (head: string, tail: string, answer: string): { head: Int32Array; tail: Int32Array; answer: Int32Array } => {
    const mark = 'LONGCTXDOCUMENTMARK';
    const user: ChatMessage = { role: 'user', content: `${head}${mark}${tail}` };
    const before = render([user], true);
    const through = render([user, { role: 'assistant', content: answer }], false);
    const at = before.indexOf(mark);
    if (at < 0 || !through.startsWith(before)) throw new ChatTemplateError('the model\'s chat template does not keep the user\'s text and the answer apart; it cannot build long examples', 'messages');
    const cut = encodeWithCuts(through, [before.length]);
    return {
      head: encode(before.slice(0, at)),
      tail: continuationTokens(tok, before.slice(at + mark.length), '.', { splitSpecial: true }),
      answer: cut.ids.slice(cut.at[0]!),
    };
  };
  // what follows an answer's text in the template: its leading special tokens end a turn
  const stopIds: number[] = [];
  try {
    const marker = 'LONGCTXANSWERMARK';
    const text = render([{ role: 'user', content: 'hi' }, { role: 'assistant', content: marker }], false);
    const at = text.indexOf(marker);
    if (at >= 0) {
      for (const id of encode(text.slice(at + marker.length))) {
        if (!tok.specialIds.has(id)) break;
        if (id !== tok.bosId) stopIds.push(id);
      }
    }
  } catch { /* a template that needs a system message or other roles: EOS alone stops */ }
  return { kind: 'jinja', prompt: (m) => encode(render(m, true)), training, stopIds, longParts };
}

/** Roles: an optional system message first, then user and assistant alternating. Returns the turns after the system message. */
function checkRoles(messages: ChatMessage[]): { system: string | null; turns: ChatMessage[]; offset: number } {
  if (messages.length === 0) throw new ChatTemplateError('messages is empty; send at least one {"role": "user", "content": ...}', 'messages');
  let turns = messages;
  let system: string | null = null;
  if (messages[0]!.role === 'system') {
    system = messages[0]!.content;
    turns = messages.slice(1);
  }
  const offset = messages.length - turns.length;
  for (let i = 0; i < turns.length; i++) {
    const want = i % 2 === 0 ? 'user' : 'assistant';
    if (turns[i]!.role !== want) {
      throw new ChatTemplateError(`messages[${i + offset}].role is "${turns[i]!.role}" but the Llama 2 template needs ${want} here (an optional system message, then user and assistant alternating)`, `messages[${i + offset}].role`);
    }
  }
  return { system, turns, offset };
}

/** The text of user turn i: the system message folded into the first, then stripped at its ends (as Meta's code and the Jinja template do). */
function userText(turns: ChatMessage[], system: string | null, i: number): string {
  const c = turns[i]!.content;
  return (i === 0 && system !== null ? `${B_SYS}${system}${E_SYS}${c}` : c).trim();
}

/**
 * Token ids of a conversation in the Llama 2 chat format, ready for the assistant's next turn.
 * Roles: an optional system message first, then user and assistant alternating, ending with user.
 */
export function llama2ChatTokens(tok: Tokenizer, messages: ChatMessage[]): Int32Array {
  const { system, turns } = checkRoles(messages);
  if (turns.length % 2 === 0) throw new ChatTemplateError('the last message must be from the user (the model answers it)', `messages[${messages.length - 1}].role`);
  const out: number[] = [];
  const bos = (): void => { if (tok.bosId >= 0) out.push(tok.bosId); };
  const add = (s: string): void => { for (const id of tok.encode(s)) out.push(id); }; // no spread: long contents would overflow the stack
  for (let i = 0; i + 1 < turns.length; i += 2) {
    bos();
    add(`${B_INST} ${userText(turns, system, i)} ${E_INST} ${turns[i + 1]!.content.trim()} `);
    if (tok.eosId >= 0) out.push(tok.eosId);
  }
  bos();
  add(`${B_INST} ${userText(turns, system, turns.length - 1)} ${E_INST}`);
  return Int32Array.from(out);
}

/** The Llama 2 pieces of a long example (ChatFormat.longParts): BOS + "[INST] head", "tail [/INST]", " answer " + EOS. */
function llama2LongParts(tok: Tokenizer, head: string, tail: string, answer: string): { head: Int32Array; tail: Int32Array; answer: Int32Array } {
  const bos = tok.bosId >= 0 ? [tok.bosId] : [], eos = tok.eosId >= 0 ? [tok.eosId] : [];
  return {
    head: concatTokens(bos, tok.encode(`${B_INST} ${head}`)), // the turn's start, as llama2ChatTokens encodes it
    tail: continuationTokens(tok, `${tail} ${E_INST}`, '.'),
    answer: concatTokens(continuationTokens(tok, ` ${answer.trim()} `, E_INST), eos),
  };
}

/**
 * `prefix + rest` encoded as one text, split where `prefix` ends: the ids of `prefix` alone and the
 * ids that follow them. Llama-style tokenizers cut before a space, so encode(prefix + rest) normally
 * starts with encode(prefix) when rest starts with a space; when a merge crosses the boundary, rest
 * is encoded as a continuation of the prefix's last characters instead (nearly the same ids).
 */
export function splitEncode(tok: Tokenizer, prefix: string, rest: string): { head: Int32Array; tail: Int32Array } {
  const head = tok.encode(prefix);
  const both = tok.encode(prefix + rest);
  if (both.length >= head.length && head.every((x, i) => both[i] === x)) return { head, tail: both.slice(head.length) };
  const anchor = prefix.slice(-8) || '.';
  const a = tok.encode(anchor);
  const cont = tok.encode(anchor + rest);
  return { head, tail: cont.length > a.length && a.every((x, i) => cont[i] === x) ? cont.slice(a.length) : tok.encode(rest) };
}

/**
 * A whole conversation for supervised fine-tuning, in the same format as llama2ChatTokens: the
 * tokens, and per token whether it is a target of the loss (1: the assistant's words and the EOS
 * that ends each answer; 0: BOS, the [INST] ... [/INST] turns). The last message must be the
 * assistant's. Each exchange is encoded as one text (what llama2ChatTokens does for past turns) and
 * split after "[/INST]" (splitEncode), so the model trains on the ids it will be prompted with.
 */
export function llama2TrainingTokens(tok: Tokenizer, messages: ChatMessage[]): { tokens: Int32Array; loss: Uint8Array } {
  const { system, turns } = checkRoles(messages);
  if (turns.length === 0 || turns.length % 2 !== 0) throw new ChatTemplateError('the last message must be from the assistant (the answer to train on)', `messages[${messages.length - 1}].role`);
  const tokens: number[] = [];
  const loss: number[] = [];
  const push = (ids: ArrayLike<number>, scored: 0 | 1): void => {
    for (let i = 0; i < ids.length; i++) { tokens.push(ids[i]!); loss.push(scored); }
  };
  for (let i = 0; i < turns.length; i += 2) {
    if (tok.bosId >= 0) push([tok.bosId], 0);
    const { head, tail } = splitEncode(tok, `${B_INST} ${userText(turns, system, i)} ${E_INST}`, ` ${turns[i + 1]!.content.trim()} `);
    push(head, 0);
    push(tail, 1);
    if (tok.eosId >= 0) push([tok.eosId], 1);
  }
  return { tokens: Int32Array.from(tokens), loss: Uint8Array.from(loss) };
}
