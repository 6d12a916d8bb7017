// The chat template of /v1/chat/completions: Llama 2's "[INST] ... [/INST]" format, as Meta's
// reference code (llama/generation.py, chat_completion) builds it, in token ids:
//
//   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user 1} [/INST] {assistant 1} </s><s>[INST] {user 2} [/INST]
//
// The system message is folded into the first user turn, every turn's text is trimmed, and BOS/EOS
// are ids rather than text (our encode() treats "<s>" in text as text, so a message cannot forge
// them). Why this one and not the model's own: a tokenizer_config.json may carry a Jinja
// `chat_template`; rendering Jinja is a later issue, so until then every model gets this template
// (the server says so at start when the folder has one). Models trained by longctx have no chat
// tuning, so for them the template only matters for the shape of the prompt.

import type { Tokenizer } from '../data/tokenizer/tokenizer.js';

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
 * Token ids of a conversation in the Llama 2 chat format, ready for the assistant's next turn.
 * Roles: an optional system message first, then user and assistant alternating, ending with user.
 */
export function llama2ChatTokens(tok: Tokenizer, messages: ChatMessage[]): Int32Array {
  if (messages.length === 0) throw new ChatTemplateError('messages is empty; send at least one {"role": "user", "content": ...}', 'messages');
  let turns = messages;
  let system: string | null = null;
  if (messages[0]!.role === 'system') {
    system = messages[0]!.content.trim();
    turns = messages.slice(1);
  }
  const offset = messages.length - turns.length;
  for (let i = 0; i < turns.length; i++) {
    const want = i % 2 === 0 ? 'user' : 'assistant';
    if (turns[i]!.role !== want) {
      throw new ChatTemplateError(`messages[${i + offset}].role is "${turns[i]!.role}" but the Llama 2 template needs ${want} here (an optional system message, then user and assistant alternating)`, `messages[${i + offset}].role`);
    }
  }
  if (turns.length % 2 === 0) throw new ChatTemplateError('the last message must be from the user (the model answers it)', `messages[${messages.length - 1}].role`);
  const text = (i: number): string => {
    const c = turns[i]!.content.trim();
    return i === 0 && system !== null ? `${B_SYS}${system}${E_SYS}${c}` : c;
  };
  const out: number[] = [];
  const bos = (): void => { if (tok.bosId >= 0) out.push(tok.bosId); };
  const add = (s: string): void => { for (const id of tok.encode(s)) out.push(id); }; // no spread: long contents would overflow the stack
  for (let i = 0; i + 1 < turns.length; i += 2) {
    bos();
    add(`${B_INST} ${text(i)} ${E_INST} ${turns[i + 1]!.content.trim()} `);
    if (tok.eosId >= 0) out.push(tok.eosId);
  }
  bos();
  add(`${B_INST} ${text(turns.length - 1)} ${E_INST}`);
  return Int32Array.from(out);
}
