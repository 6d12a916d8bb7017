// The texts and parsers of self-instruct, and the chat template shared by inference and training:
// <question>/<answer> parsing, verdicts, the Jinja template check, and training tokens that are
// exactly the inference prompt followed by the scored answer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generationPrompt, longInstanceParts, parseQAPair, parseVerdict, verifyPrompt } from '../../src/instruct/prompts.js';
import { LLAMA2_CHAT_TEMPLATE, UnsupportedChatTemplateError, chatTemplateOf, llama2ChatTokens, llama2TrainingTokens } from '../../src/data/chat-template.js';
import { testTokenizer } from '../eval/oracle.js';

test('parseQAPair: tags in either order, trimmed; missing, unclosed, empty or nested tags are unparseable', () => {
  assert.deepEqual(parseQAPair('Sure!\n<question> Who? </question>\n<answer>Ishmael.</answer> Hope it helps.'), { question: 'Who?', answer: 'Ishmael.' });
  assert.deepEqual(parseQAPair('<ANSWER>a</ANSWER><Question>q</Question>'), { question: 'q', answer: 'a' });
  assert.equal(parseQAPair('<question>Who?</question> Ishmael.'), null);
  assert.equal(parseQAPair('<question>Who?</question><answer>Ishmael.'), null);
  assert.equal(parseQAPair('<question> </question><answer>x</answer>'), null);
  assert.equal(parseQAPair('<question>a <answer>b</question><answer>c</answer>'), null);
  assert.equal(parseQAPair('whale whale whale'), null);
});

test('parseVerdict reads yes / no at the start of the reply only', () => {
  assert.equal(parseVerdict('Yes.'), 'yes');
  assert.equal(parseVerdict(' **YES**, the text says'), 'yes');
  assert.equal(parseVerdict('"No" - it is wrong'), 'no');
  assert.equal(parseVerdict('Nope'), 'unclear');
  assert.equal(parseVerdict('The answer is yes'), 'unclear');
  assert.equal(parseVerdict(''), 'unclear');
});

test('the prompts carry the paper\'s wording and the chunk in triple quotes', () => {
  const n = generationPrompt('normal', 'CHUNK');
  assert.match(n, /^You are given a text chunk \(delimited by triple quotes\) taken from a long text\. Write a question about this text and provide the correct answer\./);
  assert.match(n, /Wrap the question and answer using XML tags \(<question> and <\/question>, <answer> and <\/answer>\)\./);
  assert.ok(n.endsWith('"""CHUNK"""'));
  const s = generationPrompt('short', 'CHUNK');
  assert.match(s, /a few words or a single phrase/);
  assert.match(s, /Again, the answer needs to be short\./);
  assert.match(verifyPrompt('C', 'Q', 'A'), /"""C"""\nQuestion: Q\nProposed answer: A$/);
  const p = longInstanceParts('short', 'Who?');
  assert.equal(`${p.head}DOC${p.tail}`, 'You are given a long text (delimited by triple quotes) and a question. Read the text and answer the question in the end as concisely as you can, using a single phrase or sentence if possible. Do not provide any explanation. """DOC""" Question: Who?');
  const q = longInstanceParts('normal', 'Who?');
  assert.equal(`${q.head}DOC${q.tail}`, 'You are given a long text (delimited by triple quotes) and a question. Read the text and answer the question in the end. """DOC""" Question: Who?');
});

test('chat templates: none or the Llama 2 Jinja string render natively; any other is refused with a line saying what to do', () => {
  assert.equal(chatTemplateOf(null), 'llama2');
  assert.equal(chatTemplateOf({}), 'llama2');
  assert.equal(chatTemplateOf({ chat_template: `\n${LLAMA2_CHAT_TEMPLATE}\n` }), 'llama2');
  // the string of meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json, as JSON
  assert.match(JSON.stringify(LLAMA2_CHAT_TEMPLATE), /\{% set content = '<<SYS>>\\\\n' \+ system_message \+ '\\\\n<<\/SYS>>\\\\n\\\\n' \+ message\['content'\] %\}/);
  assert.match(LLAMA2_CHAT_TEMPLATE, /\{\{ ' ' {2}\+ content\.strip\(\) \+ ' ' \+ eos_token \}\}/);
  assert.throws(() => chatTemplateOf({ chat_template: '{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}' }, 'x/tokenizer_config.json'),
    (e: Error) => e instanceof UnsupportedChatTemplateError && /^x\/tokenizer_config\.json has a chat_template that is not the Llama 2 \[INST\] one .*remove chat_template/.test(e.message) && !e.message.includes('\n'));
  assert.throws(() => chatTemplateOf({ chat_template: [{ name: 'default', template: 'x' }] }), /not a string/);
});

test('llama2TrainingTokens: the prompt ids are exactly llama2ChatTokens\'s; only answers and their EOS are scored', () => {
  const tok = testTokenizer();
  const msgs = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: 'Who is Ishmael?' },
    { role: 'assistant' as const, content: 'A sailor.' },
    { role: 'user' as const, content: 'And Ahab?' },
    { role: 'assistant' as const, content: 'The captain.' },
  ];
  const { tokens, loss } = llama2TrainingTokens(tok, msgs);
  assert.equal(tokens.length, loss.length);
  // everything before the last answer is the inference prompt for the last question
  const prompt = llama2ChatTokens(tok, msgs.slice(0, 4));
  assert.deepEqual(Array.from(tokens.subarray(0, prompt.length)), Array.from(prompt));
  const scoredText = (from: number, to: number): string => tok.decode(Array.from(tokens.subarray(from, to)).filter((_, i) => loss[from + i]), { skipSpecial: true });
  assert.equal(scoredText(prompt.length, tokens.length).trim(), 'The captain.');
  assert.equal(tokens[tokens.length - 1], tok.eosId);
  assert.equal(loss[tokens.length - 1], 1);
  assert.equal(scoredText(0, prompt.length).trim(), 'A sailor.');
  assert.equal(loss[0], 0);
  assert.throws(() => llama2TrainingTokens(tok, msgs.slice(0, 4)), /last message must be from the assistant/);
});
