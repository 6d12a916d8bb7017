// Chat templates rendered from a model's tokenizer_config.json (Jinja, @huggingface/jinja): the real
// templates of Meta-Llama-3-8B-Instruct, SmolLM2-Instruct (ChatML) and Mistral-7B-Instruct-v0.1,
// character for character as their tokenizer_config.json files carry them. The expected texts below
// are what transformers' apply_chat_template renders for them (written out by hand from the
// templates' definitions); the ids are that text encoded with special tokens recognised.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chatFormat, chatTemplateOf, UnsupportedChatTemplateError, LLAMA2_CHAT_TEMPLATE, llama2ChatTokens, type ChatMessage } from '../../src/data/chat-template.js';
import { testTokenizer } from '../eval/oracle.js';
import { LLAMA3_TEMPLATE, withSpecials } from './chat-fixtures.js';

const CHATML_TEMPLATE = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
const MISTRAL_TEMPLATE = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

const convo: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: ' Who is Ishmael? ' },
  { role: 'assistant', content: 'A sailor.' },
  { role: 'user', content: 'And Ahab?' },
];

test('chatTemplateOf: none or Llama 2 native, anything that parses is Jinja; a template that does not parse, or a list without "default", is refused by name', () => {
  assert.equal(chatTemplateOf(null), 'llama2');
  assert.equal(chatTemplateOf({ chat_template: `\n${LLAMA2_CHAT_TEMPLATE}\n` }), 'llama2');
  assert.equal(chatTemplateOf({ chat_template: LLAMA3_TEMPLATE }), 'jinja');
  assert.equal(chatTemplateOf({ chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: CHATML_TEMPLATE }] }), 'jinja');
  assert.throws(() => chatTemplateOf({ chat_template: '{% for m in messages %}{{ m.content }' }, 'x/tokenizer_config.json'),
    (e: Error) => e instanceof UnsupportedChatTemplateError && /^x\/tokenizer_config\.json: chat_template does not parse as Jinja/.test(e.message) && !e.message.includes('\n'));
  assert.throws(() => chatTemplateOf({ chat_template: [{ name: 'tool_use', template: 'x' }] }), /without a "default" one/);
  assert.throws(() => chatTemplateOf({ chat_template: 7 }), /not a Jinja string/);
});

test('Llama 3: the text transformers renders, its ids with the header tokens as ids; <|eot_id|> ends a turn; training scores the answer and its <|eot_id|> only', () => {
  const tok = withSpecials(['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>']);
  const id = (t: string): number => tok.tokenToId(t)!;
  const f = chatFormat(tok, { chat_template: LLAMA3_TEMPLATE, bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' });
  assert.equal(f.kind, 'jinja');
  const text = '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>'
    + '<|start_header_id|>user<|end_header_id|>\n\nWho is Ishmael?<|eot_id|>'
    + '<|start_header_id|>assistant<|end_header_id|>\n\nA sailor.<|eot_id|>'
    + '<|start_header_id|>user<|end_header_id|>\n\nAnd Ahab?<|eot_id|>'
    + '<|start_header_id|>assistant<|end_header_id|>\n\n';
  const prompt = f.prompt(convo);
  assert.deepEqual(Array.from(prompt), Array.from(tok.encode(text, { splitSpecial: true })));
  assert.equal(prompt[0], id('<|begin_of_text|>'));
  assert.equal(prompt.filter((x) => x === id('<|eot_id|>')).length, 4);
  assert.deepEqual(f.stopIds, [id('<|eot_id|>')]);
  // training on the whole conversation with the last answer
  const { tokens, loss } = f.training([...convo, { role: 'assistant', content: 'The captain.' }]);
  assert.deepEqual(Array.from(tokens.subarray(0, prompt.length)), Array.from(prompt), 'the prompt is a prefix of the training ids');
  const scored = Array.from(tokens).filter((_, i) => loss[i] === 1);
  const answers = [...tok.encode('A sailor.'), id('<|eot_id|>'), ...tok.encode('The captain.'), id('<|eot_id|>')];
  assert.deepEqual(scored, answers);
  // a long example's pieces: BOS + the user's header and text up to the document, then the question to the assistant's header, then the answer and <|eot_id|>
  const parts = f.longParts('Read this. """', '""" Question: Who?', 'Ishmael.');
  assert.equal(parts.head[0], id('<|begin_of_text|>'));
  assert.equal(tok.decode(Array.from(parts.head), { skipSpecial: true }), 'user\n\nRead this. """');
  assert.equal(tok.decode(Array.from(parts.tail)), '""" Question: Who?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  assert.deepEqual(Array.from(parts.answer), [...tok.encode('Ishmael.'), id('<|eot_id|>')]);
});

test('ChatML (SmolLM2): the default system message, <|im_end|> ends a turn; Mistral: roles enforced by the template\'s raise_exception', () => {
  const tok = withSpecials(['<|im_start|>', '<|im_end|>']);
  const f = chatFormat(tok, { chat_template: CHATML_TEMPLATE });
  const text = '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n';
  assert.deepEqual(Array.from(f.prompt([{ role: 'user', content: 'Hi' }])), Array.from(tok.encode(text, { splitSpecial: true })));
  assert.deepEqual(f.stopIds, [tok.tokenToId('<|im_end|>')]);
  const t = f.training([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello there.' }]);
  assert.equal(tok.decode(Array.from(t.tokens).filter((_, i) => t.loss[i] === 1)), 'Hello there.<|im_end|>\n');

  const m = testTokenizer(); // Mistral's is a SentencePiece-style byte-fallback BPE with <s> and </s>
  const mf = chatFormat(m, { chat_template: MISTRAL_TEMPLATE, bos_token: '<s>', eos_token: '</s>' });
  const ids = mf.prompt([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }, { role: 'user', content: 'Bye' }]);
  assert.equal(ids[0], m.bosId);
  assert.ok(Array.from(ids).includes(m.eosId), '</s> after the answer is the EOS id');
  assert.deepEqual(mf.stopIds, [m.eosId]);
  assert.throws(() => mf.prompt([{ role: 'system', content: 'x' }, { role: 'user', content: 'Hi' }]), /chat template refused the conversation: (Conversation roles must alternate|Only user and assistant roles)/);
});

test('no template: the Llama 2 format, as before (ids equal llama2ChatTokens)', () => {
  const tok = testTokenizer();
  const f = chatFormat(tok, null);
  assert.equal(f.kind, 'llama2');
  assert.deepEqual(Array.from(f.prompt(convo)), Array.from(llama2ChatTokens(tok, convo)));
  assert.deepEqual(f.stopIds, []);
});
