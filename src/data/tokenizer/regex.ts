// Translate the Oniguruma regular expressions Hugging Face tokenizer.json files carry (the Rust
// `tokenizers` crate compiles them with Oniguruma) into JavaScript RegExp source (u flag).
//
// Handled: \s \S (Unicode White_Space, not JS's \s), \d \D (\p{Nd}), \w \W (Oniguruma's Unicode word
// characters), \p{..} / \p{^..}, \A \z \Z, ^ and $ as line anchors (Oniguruma's Ruby syntax), '.'
// (anything but \n), \x{HHHH}, inline case-insensitive groups (?i:...) over literals and simple
// classes, atomic groups and possessive quantifiers (treated as ordinary ones, as Hugging Face's own
// JavaScript port does: equivalent for the patterns Llama-family tokenizers use).
// Anything else that JavaScript would read differently is an error naming the construct.

const WORD = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}';
const SYNTAX = '^$\\.*+?()[]{}|/';

export class RegexTranslateError extends Error {}

function caseVariants(ch: string): string {
  const lo = ch.toLowerCase();
  const up = ch.toUpperCase();
  if (lo === up || lo.length !== 1 || up.length !== 1) return ch;
  return lo + up;
}

export function onigurumaToJs(src: string): string {
  let i = 0;
  let out = '';
  const ciStack: boolean[] = []; // per open group: case-insensitive?
  const ci = (): boolean => ciStack.length > 0 && ciStack[ciStack.length - 1]!;
  const fail = (what: string): never => {
    throw new RegexTranslateError(`unsupported regular expression construct ${what} at offset ${i} in ${JSON.stringify(src)}`);
  };

  // one escape after a backslash at src[i] (i points at the backslash); returns [jsFragment, isClassSafe]
  const escape = (inClass: boolean): string => {
    const x = src[i + 1];
    if (x === undefined) fail('trailing backslash');
    i += 2;
    switch (x) {
      case 's': return inClass ? '\\p{White_Space}' : '\\p{White_Space}';
      case 'S': return '\\P{White_Space}';
      case 'd': return '\\p{Nd}';
      case 'D': return '\\P{Nd}';
      case 'w': return inClass ? WORD : `[${WORD}]`;
      case 'W': if (inClass) fail('\\W inside a character class'); return `[^${WORD}]`;
      case 'n': return '\\n';
      case 'r': return '\\r';
      case 't': return '\\t';
      case 'f': return '\\f';
      case 'v': return '\\v';
      case 'a': return '\\x07';
      case 'e': return '\\x1B';
      case '0': return '\\0';
      case 'A': if (inClass) fail('\\A in a class'); return '(?<![\\s\\S])';
      case 'z': if (inClass) fail('\\z in a class'); return '(?![\\s\\S])';
      case 'Z': if (inClass) fail('\\Z in a class'); return '(?=\\n?(?![\\s\\S]))';
      case 'p':
      case 'P': {
        const m = /^\{(\^?)([A-Za-z_=]+)\}/.exec(src.slice(i));
        if (!m) fail(`\\${x} without {Name}`);
        i += m![0].length;
        const neg = (x === 'P') !== (m![1] === '^');
        return `\\${neg ? 'P' : 'p'}{${m![2]}}`;
      }
      case 'x': {
        const m = /^\{([0-9a-fA-F]{1,6})\}/.exec(src.slice(i)) ?? /^([0-9a-fA-F]{2})/.exec(src.slice(i));
        if (!m) fail('\\x without hex digits');
        i += m![0].length;
        return `\\u{${m![1]}}`;
      }
      case 'u': {
        const m = /^([0-9a-fA-F]{4})/.exec(src.slice(i));
        if (!m) fail('\\u without 4 hex digits');
        i += 4;
        return `\\u${m![1]}`;
      }
      default:
        if (/[A-Za-z0-9]/.test(x!)) fail(`\\${x}`);
        if (x === '-') return inClass ? '\\-' : '-';
        if (SYNTAX.includes(x!)) return `\\${x}`;
        return x!; // identity escape of a character JS does not allow escaping in u mode
    }
  };

  const literal = (ch: string, inClass: boolean): string => {
    const v = ci() ? caseVariants(ch) : ch;
    if (v.length > 1) return inClass ? v : `[${v}]`;
    return ch;
  };

  while (i < src.length) {
    const c = src[i]!;
    if (c === '\\') {
      out += escape(false); // escaped letters under (?i:) are not case-folded (Llama patterns never need it)
      continue;
    }
    if (c === '(') {
      if (src[i + 1] === '?') {
        const rest = src.slice(i);
        const m = /^\(\?(?:<=|<!|=|!|:|>|i:|-i:|[imx]+-?[imx]*:)/.exec(rest);
        if (!m) fail(`group ${rest.slice(0, 4)}`);
        const tag = m![0];
        i += tag.length;
        if (tag === '(?>') { ciStack.push(ci()); out += '(?:'; continue; }
        if (tag === '(?i:') { ciStack.push(true); out += '(?:'; continue; }
        if (tag === '(?-i:') { ciStack.push(false); out += '(?:'; continue; }
        if (/^\(\?[imx]/.test(tag) && tag !== '(?:') fail(`inline flags ${tag}`);
        ciStack.push(ci());
        out += tag;
        continue;
      }
      ciStack.push(ci());
      out += '(';
      i++;
      continue;
    }
    if (c === ')') {
      if (ciStack.length === 0) fail('unbalanced )');
      ciStack.pop();
      out += ')';
      i++;
      continue;
    }
    if (c === '[') {
      if (src[i + 1] === ':') fail('POSIX bracket');
      i++;
      let cls = '[';
      if (src[i] === '^') { cls += '^'; i++; }
      let first = true;
      while (i < src.length && (src[i] !== ']' || first)) {
        const d = src[i]!;
        first = false;
        if (d === '\\') { cls += escape(true); continue; }
        if (d === '[') fail(src[i + 1] === ':' ? 'POSIX bracket' : 'nested character class');
        if (d === '&' && src[i + 1] === '&') fail('character class intersection &&');
        if (d === '-' && ci() && /[A-Za-z]/.test(src[i - 1] ?? '') && /[A-Za-z]/.test(src[i + 1] ?? '')) fail('letter range inside (?i:)');
        if (d === ']' || d === '[' || d === '/') cls += `\\${d}`;
        else cls += literal(d, true);
        i++;
      }
      if (src[i] !== ']') fail('unterminated character class');
      i++;
      out += cls + ']';
      continue;
    }
    if (c === '.') { out += '[^\\n]'; i++; continue; }
    if (c === '^') { out += '(?:(?<![\\s\\S])|(?<=\\n))'; i++; continue; }
    if (c === '$') { out += '(?:(?=\\n)|(?![\\s\\S]))'; i++; continue; }
    if (c === '*' || c === '+' || c === '?' || c === '}') {
      out += c;
      i++;
      if (src[i] === '+') i++; // possessive -> ordinary
      else if (src[i] === '?' && c !== '?') { out += '?'; i++; } // lazy
      continue;
    }
    if (c === '{') {
      const m = /^\{\d*(,\d*)?\}/.exec(src.slice(i));
      if (m) { out += m[0]; i += m[0].length; if (src[i] === '+') i++; else if (src[i] === '?') { out += '?'; i++; } continue; }
      out += '\\{';
      i++;
      continue;
    }
    if (c === ']') { out += '\\]'; i++; continue; }
    if (c === '/') { out += '\\/'; i++; continue; }
    // a literal (surrogate pairs copied whole)
    const cp = src.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    out += literal(ch, false);
    i += ch.length;
  }
  if (ciStack.length) fail('unbalanced (');
  return out;
}

/** Compile an Oniguruma pattern as a global, unicode JS RegExp. */
export function compileOniguruma(src: string): RegExp {
  const js = onigurumaToJs(src);
  try {
    return new RegExp(js, 'gu');
  } catch (e) {
    throw new RegexTranslateError(`cannot compile regular expression ${JSON.stringify(src)}: ${(e as Error).message}`);
  }
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
