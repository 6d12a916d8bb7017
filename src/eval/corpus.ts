// The text the probes read: held-out documents of a prepared data folder, or any text source
// (`moby-dick`, `sotu`, `file:PATH`, `dir:PATH`, `jsonl:PATH`, or a plain file path).
//
// Loss-vs-context needs token ids in the model's tokenizer; the retrieval probes need text (to find
// a first sentence, to cut a haystack at sentence ends). A data folder gives both: its tokens are
// used as they are when its tokenizer is the model's, else decoded and re-encoded.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDataset, type Dataset } from '../data/dataset.js';
import { parseSources, readSources } from '../data/sources.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';

export interface TextDoc {
  id: string;
  text: string;
}

export interface TokenDoc {
  id: string;
  tokens: Int32Array; // no BOS/EOS
}

export interface EvalCorpus {
  /** what the user gave */
  spec: string;
  kind: 'data-folder' | 'sources';
  /** true for a data folder's validation split: documents the model did not train on */
  heldOut: boolean;
  texts(): TextDoc[];
  tokenDocs(tok: Tokenizer): TokenDoc[];
  /** for results.json */
  describe(): Record<string, unknown>;
}

class DataFolderCorpus implements EvalCorpus {
  readonly kind = 'data-folder';
  readonly heldOut = true;
  private ds: Dataset | null = null;
  private textCache: TextDoc[] | null = null;
  private reencoded = false;

  constructor(readonly spec: string) {}

  private dataset(): Dataset {
    if (!this.ds) {
      this.ds = openDataset(this.spec);
      if (this.ds.val.size === 0) {
        throw new Error(`${this.spec}: the data folder has no held-out documents (prepared with --val-fraction 0?); prepare it with a validation split, or pass a text source such as moby-dick`);
      }
    }
    return this.ds;
  }

  texts(): TextDoc[] {
    if (!this.textCache) {
      const ds = this.dataset();
      this.textCache = [];
      for (let i = 0; i < ds.val.size; i++) {
        const d = ds.val.doc(i);
        this.textCache.push({ id: `${d.source}/${d.id}`, text: ds.tokenizer.decode(d.tokens) });
      }
    }
    return this.textCache;
  }

  tokenDocs(tok: Tokenizer): TokenDoc[] {
    const ds = this.dataset();
    if (ds.tokenizer.hash() === tok.hash()) {
      const out: TokenDoc[] = [];
      for (let i = 0; i < ds.val.size; i++) {
        const d = ds.val.doc(i);
        out.push({ id: `${d.source}/${d.id}`, tokens: Int32Array.from(d.tokens) });
      }
      return out;
    }
    this.reencoded = true;
    return this.texts().map((d) => ({ id: d.id, tokens: tok.encode(d.text) }));
  }

  describe(): Record<string, unknown> {
    const ds = this.dataset();
    return {
      spec: this.spec, kind: this.kind, heldOut: true, documents: ds.val.size, tokens: ds.val.totalTokens,
      // true when the folder's tokenizer differs from the model's and documents were re-encoded
      reencoded: this.reencoded,
    };
  }
}

class SourcesCorpus implements EvalCorpus {
  readonly kind = 'sources';
  readonly heldOut = false;
  private textCache: TextDoc[] | null = null;

  constructor(readonly spec: string, private readonly list: string) {
    parseSources(list); // fail now on a bad spec
  }

  texts(): TextDoc[] {
    if (!this.textCache) {
      this.textCache = [...readSources(parseSources(this.list))].map((d) => ({ id: `${d.source}/${d.id}`, text: d.text }));
      if (this.textCache.length === 0) throw new Error(`${this.spec}: holds no documents`);
    }
    return this.textCache;
  }

  tokenDocs(tok: Tokenizer): TokenDoc[] {
    return this.texts().map((d) => ({ id: d.id, tokens: tok.encode(d.text) }));
  }

  describe(): Record<string, unknown> {
    return { spec: this.spec, kind: this.kind, heldOut: false, documents: this.texts().length };
  }
}

/**
 * `spec` is a data folder (a directory with manifest.json: its validation split), a file or a
 * directory of text files (every file under it), or a sources list as `longctx data prepare` takes.
 */
export function openCorpus(spec: string): EvalCorpus {
  if (fs.existsSync(spec)) {
    const st = fs.statSync(spec);
    if (st.isDirectory()) {
      if (fs.existsSync(path.join(spec, 'manifest.json'))) return new DataFolderCorpus(spec);
      return new SourcesCorpus(spec, `dir:${spec}`);
    }
    return new SourcesCorpus(spec, `file:${spec}`);
  }
  return new SourcesCorpus(spec, spec);
}

/** A corpus over documents in memory (tests, library use). */
export function corpusFromTexts(docs: TextDoc[], spec = 'memory'): EvalCorpus {
  return {
    spec, kind: 'sources', heldOut: false,
    texts: () => docs,
    tokenDocs: (tok) => docs.map((d) => ({ id: d.id, tokens: tok.encode(d.text) })),
    describe: () => ({ spec, kind: 'sources', heldOut: false, documents: docs.length }),
  };
}
