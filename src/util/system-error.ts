// Node's file and network errors as one line a user can act on. Node says
// "EEXIST: file already exists, mkdir 'out'": the code first and the path last, and nothing about
// what to do. The commands check the inputs they know about before working; this is the last word
// for the rest (a path that turned out to be a file, a full disk), said the same way everywhere.

/** A Node system error: an errno code, the call that failed and, usually, the path. */
interface SystemError extends Error {
  code: string;
  syscall: string;
  path?: string;
  dest?: string;
}

function isSystemError(e: unknown): e is SystemError {
  if (!(e instanceof Error)) return false;
  const x = e as Partial<SystemError>;
  return typeof x.code === 'string' && /^E[A-Z]+$/.test(x.code) && typeof x.syscall === 'string';
}

/** What each code means for the path it names, and what to do. */
const MEANING: Record<string, string> = {
  ENOTDIR: 'a file stands where a folder is needed (the path or a folder on it); choose another path',
  EISDIR: 'is a folder where a file is needed; choose a file path',
  ENOENT: 'does not exist; check the path',
  EACCES: 'permission denied; choose a path you can write, or fix its permissions',
  EPERM: 'operation not permitted; choose a path you can write, or fix its permissions',
  ENOSPC: 'no space left on the device; free some space and run again',
  EDQUOT: 'disk quota exceeded; free some space and run again',
  EROFS: 'is on a read-only file system; choose another path',
  ENAMETOOLONG: 'the path is too long; choose a shorter one',
  EMFILE: 'too many open files; raise the limit (ulimit -n) and run again',
};

/**
 * The one-line message of an error: a Node system error becomes `PATH: meaning; what to do (CODE
 * from SYSCALL)`, anything else its message's first line.
 */
export function errorLine(e: unknown): string {
  if (!isSystemError(e)) return String((e as Error)?.message ?? e).split('\n')[0]!;
  const where = e.path ?? e.dest;
  // mkdir's EEXIST: something that is not a folder has the name (mkdir -p accepts a folder)
  const meaning = e.code === 'EEXIST' && e.syscall === 'mkdir' ? 'is a file where a folder is needed; choose another path' : MEANING[e.code];
  if (where === undefined || meaning === undefined) return e.message.split('\n')[0]!;
  return `${where}: ${meaning} (${e.code} from ${e.syscall})`;
}
