// The chat template of /v1/chat/completions, `longctx chat` and instruction tuning: Llama 2's
// "[INST] ... [/INST]" format, as Meta's reference code (llama/generation.py, chat_completion) and
// the Llama-2-chat tokenizer_config.json's Jinja `chat_template` build it, in token ids:
//
//   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user 1} [/INST] {assistant 1} </s><s>[INST] {user 2} [/INST]
//
// The system message is folded into the first user turn, every turn's text is stripped at its ends,
// and BOS/EOS are ids rather than text (our encode() treats "<s>" in text as text, so a message
// cannot forge them).
//
// A model folder's tokenizer_config.json may carry a Jinja `chat_template`. We do not interpret
// Jinja: a template that is exactly the Llama 2 one (LLAMA2_CHAT_TEMPLATE, what Meta's Llama-2-chat
// folders and our instruction-tuned models carry) is rendered natively here; any other template is
// refused with a message (chatTemplateOf), because rendering the Llama 2 format for a model trained
// on another would silently give it prompts it has never seen. A folder without a template gets the
// Llama 2 format (longctx's base models have no chat tuning, so there it only shapes the prompt).

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

/**
 * Which chat format a model folder's tokenizer_config.json asks for: 'llama2' when it has no
 * chat_template or exactly LLAMA2_CHAT_TEMPLATE (surrounding whitespace aside); anything else throws
 * a one-line UnsupportedChatTemplateError naming `where`.
 */
export function chatTemplateOf(tokenizerConfig: Record<string, unknown> | null | undefined, where = 'tokenizer_config.json'): 'llama2' {
  const t = tokenizerConfig?.chat_template;
  if (t === undefined || t === null) return 'llama2';
  if (typeof t === 'string' && t.trim() === LLAMA2_CHAT_TEMPLATE) return 'llama2';
  const what = typeof t === 'string' ? `a chat_template that is not the Llama 2 [INST] one (${JSON.stringify(t.slice(0, 60))}...)` : 'a chat_template that is not a string (named templates are not supported)';
  throw new UnsupportedChatTemplateError(
    `${where} has ${what}; longctx renders only the Llama 2 format natively (it does not interpret Jinja): ` +
    'remove chat_template from the file to chat in the Llama 2 format, or use the model with a tool that renders its template');
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
