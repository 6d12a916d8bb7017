// Reading and writing tokenizer folders: a Hugging Face tokenizer.json (+ tokenizer_config.json,
// which names BOS/EOS, as transformers' AutoTokenizer expects).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../util/atomic.js';
import { HfTokenizer, type Tokenizer } from './tokenizer.js';
import { jsonErrorText } from '../../util/json-error.js';

/** Parse tokenizer.json text (`where` names it in errors). */
export function tokenizerFromJSON(text: string, where = 'tokenizer.json', config?: Record<string, unknown>): HfTokenizer {
  return new HfTokenizer(text, where, config ? { config } : {});
}

/** The tokenizer.json path for a file, a folder containing one, or a run folder (its model/ holds it). */
export function tokenizerPath(pathOrDir: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(pathOrDir);
  } catch (e) {
    throw new Error(`${pathOrDir}: cannot read tokenizer (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give a tokenizer.json or a folder with one`);
  }
  if (!st.isDirectory()) return pathOrDir;
  const p = path.join(pathOrDir, 'tokenizer.json');
  const inRun = path.join(pathOrDir, 'model', 'tokenizer.json');  // a run folder stands for its model, as --from does
  if (!fs.existsSync(p) && fs.existsSync(inRun)) return inRun;
  if (!fs.existsSync(p)) throw new Error(`${pathOrDir}: no tokenizer.json in this folder (train one with: longctx tokenizer train --out ${pathOrDir})`);
  return p;
}

/** Load a Hugging Face tokenizer.json (a file, or a folder containing tokenizer.json). */
export function loadTokenizer(pathOrDir: string): HfTokenizer {
  const file = tokenizerPath(pathOrDir);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let config: Record<string, unknown> | undefined;
  const cfgPath = path.join(path.dirname(file), 'tokenizer_config.json');
  if (fs.existsSync(cfgPath)) {
    try {
      const c = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
      if (typeof c === 'object' && c !== null && !Array.isArray(c)) config = c;
    } catch (e) {
      throw new Error(`${cfgPath}: not valid JSON (${jsonErrorText(e)})`);
    }
  }
  return tokenizerFromJSON(text, file, config);
}

/**
 * The tokenizer_config.json object transformers' AutoTokenizer reads: class, special tokens, and
 * `extra` fields (model_max_length, chat_template, ...).
 */
export function tokenizerConfigObject(tok: Tokenizer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const name = (id: number): string | null => (id >= 0 ? tok.idToToken(id) ?? null : null);
  return {
    tokenizer_class: tok.kind === 'byte-fallback' ? 'LlamaTokenizerFast' : 'PreTrainedTokenizerFast',
    bos_token: name(tok.bosId),
    eos_token: name(tok.eosId),
    unk_token: name(tok.unkId),
    pad_token: null,
    add_bos_token: tok.addsBos, // what a reload (ours or transformers') must do again
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    ...extra,
  };
}

/**
 * Write tokenizer.json and tokenizer_config.json into `dir` (created if needed), each atomically.
 * Other files in the folder (e.g. a model's weights) are left alone.
 */
export function saveTokenizer(dir: string, tok: Tokenizer, opts: { modelMaxLength?: number; chatTemplate?: string } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, 'tokenizer.json'), tok.toJSON());
  const cfg = tokenizerConfigObject(tok, {
    ...(opts.modelMaxLength ? { model_max_length: opts.modelMaxLength } : {}),
    ...(opts.chatTemplate !== undefined ? { chat_template: opts.chatTemplate } : {}),
  });
  writeFileAtomic(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg, null, 2) + '\n');
}

/** tokenizer_config.json of the folder, when it has one (passed on to clients; its chat_template decides chat). */
export function readTokenizerConfig(dir: string): Record<string, unknown> | null {
  const file = path.join(dir, 'tokenizer_config.json');
  if (!fs.existsSync(file)) return null;
  try {
    const c = JSON.parse(fs.readFileSync(file, 'utf8'));
    return typeof c === 'object' && c !== null && !Array.isArray(c) ? c : null;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${jsonErrorText(e)})`);
  }
}
