// The texts and parsers of self-instruct, and the chat template shared by inference and training:
// <question>/<answer> parsing, verdicts, the Jinja template check, and training tokens that are
// exactly the inference prompt followed by the scored answer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generationPrompt, longInstanceParts, parseQAPair, parseVerdict, verifyPrompt } from '../../src/instruct/prompts.js';
import { llama2ChatTokens, llama2TrainingTokens } from '../../src/data/chat-template.js';
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
