// JSON.parse's message as one line: V8 quotes the text around the error, newlines included, and
// our errors are one line naming the file.

/** The parse error's message with every run of whitespace made one space. */
export function jsonErrorText(e: unknown): string {
  return String((e as Error)?.message ?? e).replace(/\s+/g, ' ').trim();
}
