// The pre-tokenizer split patterns byte-level BPE tokenizers use, in the Oniguruma syntax their
// tokenizer.json files carry. Shared by the tokenizer (which runs them), the trainer (which writes
// Llama 3's into new tokenizers) and the GGUF writer (which names them for llama.cpp).

/** GPT-2's pattern: the ByteLevel pre-tokenizer's default when `use_regex` is on. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** Llama 3's pattern (llama.cpp calls it "llama-bpe"). */
export const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
