// The one line `topiary` prints for an error (src/cli/main.ts). Topiary's own errors already name their file or flag;
// Node's file-system errors are rewritten here so that they do too, whatever code path let one through.

/** Short words for the errno codes a user can cause by pointing Topiary at the wrong place. */
const ERRNO_WORDS: Readonly<Record<string, string>> = {
  EISDIR: 'is a folder, not a file', ENOTDIR: 'a part of the path is not a folder', EROFS: 'read-only file system',
  EACCES: 'permission denied', EPERM: 'operation not permitted', ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded', ENOENT: 'no such file or folder', EEXIST: 'already exists', ENAMETOOLONG: 'name too long',
  ELOOP: 'too many levels of symbolic links', EMFILE: 'too many open files', EXDEV: 'cannot move across file systems',
};

/**
 * One line for any error. Node's own file-system errors (those with a code and a syscall) are rewritten to name the
 * path first — `EISDIR: illegal operation on a directory, read` names nothing — and say what the code means.
 */
export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const err = e as NodeJS.ErrnoException & { dest?: string };
  if (typeof err.code !== 'string' || typeof err.syscall !== 'string') return e.message;
  const what = (Object.hasOwn(ERRNO_WORDS, err.code) ? ERRNO_WORDS[err.code] : undefined) ?? e.message.replace(/^[A-Z]+: /, '').replace(/, \w+ .*$/, '');
  const where = err.path !== undefined ? `${err.path}${err.dest !== undefined ? ` -> ${err.dest}` : ''}: ` : '';
  const hint = err.path === undefined ? ' (the operating system did not say which file; rerun with TOPIARY_DEBUG=1 to see where)' : '';
  return `${where}${what} (${err.code} in ${err.syscall})${hint}`.replace(/\s*\n\s*/g, ' ');
}
