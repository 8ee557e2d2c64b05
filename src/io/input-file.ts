// Opening the files a user hands Topiary (model files, corpora, recipes, calibration tokens) safely: only regular
// files are read — a named pipe (FIFO) would block the read forever, a character device such as /dev/zero never
// ends, a folder fails with an EISDIR that names nothing — and text is decoded strictly, so a binary or non-UTF-8
// file is refused with the byte offset of the first bad byte instead of being read with U+FFFD replacements.
//
// Files are opened with O_NONBLOCK and checked with fstat on the open descriptor: opening a FIFO that way returns at
// once instead of waiting for a writer, and checking the descriptor (not the path) leaves no window for the path to
// be swapped between the check and the read. On a regular file O_NONBLOCK changes nothing.

import { constants, openSync, closeSync, fstatSync, readFileSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** What went wrong with an input file. */
export type InputFileProblem = 'cannot-open' | 'not-a-regular-file' | 'invalid-utf8' | 'invalid-json' | 'invalid-content';

export class InputFileError extends Error {
  constructor(readonly file: string, readonly detail: string, readonly problem: InputFileProblem = 'invalid-content') {
    super(`${file}: ${detail}`);
    this.name = 'InputFileError';
  }
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** What a non-regular file is, in words. */
export function describeFileType(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

function notRegular(label: string, st: Stats): InputFileError {
  return new InputFileError(label, `is ${describeFileType(st)}, not a regular file`, 'not-a-regular-file');
}

/** An errno failure (ENOENT, EACCES, EISDIR, ELOOP, ...) as an error naming the file, on one line. */
export function fileErrorOf(label: string, e: unknown, doing = 'cannot read'): InputFileError {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOENT' ? 'no such file'
    : err.code === 'EACCES' || err.code === 'EPERM' ? 'permission denied'
    : err.code === 'EISDIR' ? 'is a folder, not a file'
    : oneLine(err.message ?? String(e));
  if (err.code === 'EISDIR') return new InputFileError(label, why, 'not-a-regular-file');
  return new InputFileError(label, err.code === 'ENOENT' ? why : `${doing} (${why})`, 'cannot-open');
}

/**
 * Opens `path` for reading if it is a regular file (following symlinks); `label` is how errors name it (default: the
 * path). The caller closes the handle.
 */
export async function openRegularFile(path: string, label = path): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, OPEN_FLAGS);
  } catch (e) {
    throw fileErrorOf(label, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw notRegular(label, st);
    return { fh, size: st.size };
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}

/** Largest JSON side file read whole (tokenizer.json files reach tens of MB; a config of gigabytes is not one). */
export const MAX_JSON_BYTES = 512 * 1024 * 1024;

/** The bytes of a regular file (see openRegularFile), refused above `maxBytes` before reading. */
export async function readRegularFile(path: string, label = path, maxBytes = Number.MAX_SAFE_INTEGER): Promise<Buffer> {
  const { fh, size } = await openRegularFile(path, label);
  try {
    if (size > maxBytes) throw new InputFileError(label, `is ${size} bytes, more than the ${maxBytes} a file of this kind may hold`, 'invalid-content');
    return await fh.readFile();
  } catch (e) {
    throw e instanceof InputFileError ? e : fileErrorOf(label, e);
  } finally {
    await fh.close();
  }
}

/** Opens `path` (refusing FIFOs and devices without blocking), checks it is a regular file and hands its fd to `use`. */
function withRegularFileSync<T>(path: string, label: string, use: (fd: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    throw fileErrorOf(label, e);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw notRegular(label, st);
    return use(fd);
  } catch (e) {
    throw e instanceof InputFileError ? e : fileErrorOf(label, e);
  } finally {
    closeSync(fd);
  }
}

/** The bytes of a regular file, synchronously (for the synchronous corpus readers). */
export function readRegularFileSync(path: string, label = path): Buffer {
  return withRegularFileSync(path, label, (fd) => readFileSync(fd));
}

/** Throws unless `path` is a regular file (for files another library opens itself, e.g. the tokenizer's). */
export function assertRegularFileSync(path: string, label = path): void {
  withRegularFileSync(path, label, () => undefined);
}

/**
 * Offset of the first byte that does not belong to a well-formed UTF-8 sequence (WHATWG / Unicode rules: no
 * overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequence at the end), or -1 if all are valid.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) { i++; continue; }
    let need: number;
    let lo = 0x80, hi = 0xbf; // allowed range of the first continuation byte
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) { need = 2; if (b === 0xe0) lo = 0xa0; if (b === 0xed) hi = 0x9f; }
    else if (b >= 0xf0 && b <= 0xf4) { need = 3; if (b === 0xf0) lo = 0x90; if (b === 0xf4) hi = 0x8f; }
    else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      const [l, h] = k === 1 ? [lo, hi] : [0x80, 0xbf];
      if (c === undefined || c < l || c > h) return i;
    }
    i += need + 1;
  }
  return -1;
}

/**
 * Strict UTF-8 decoding of a whole file's bytes (a leading BOM is kept; callers strip it where the format allows one).
 * Refuses invalid bytes with their offset, naming the file.
 */
export function decodeUtf8Strict(bytes: Uint8Array, label: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const shown = Array.from(bytes.subarray(Math.max(0, at), Math.max(0, at) + 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new InputFileError(label, `is not valid UTF-8 text: invalid byte at offset ${at} (bytes ${shown}); is it a binary file?`, 'invalid-utf8');
  }
}

/** A regular file read as strict UTF-8 text. */
export async function readTextFile(path: string, label = path, maxBytes = Number.MAX_SAFE_INTEGER): Promise<string> {
  return decodeUtf8Strict(await readRegularFile(path, label, maxBytes), label);
}

/** Collapses a message onto one line (JSON.parse quotes the offending source text, newlines included). */
export function oneLine(message: string, max = 300): string {
  const s = message.replace(/\s*[\r\n]+\s*/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** JSON.parse with an error that names the file and stays on one line. */
export function parseJson(text: string, label: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputFileError(label, `is not valid JSON (${oneLine(e instanceof Error ? e.message : String(e))})`, 'invalid-json');
  }
}

/** A regular file holding strict UTF-8 JSON (a leading byte-order mark is skipped). */
export async function readJsonFile(path: string, label = path): Promise<unknown> {
  const text = await readTextFile(path, label, MAX_JSON_BYTES);
  return parseJson(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, label);
}
