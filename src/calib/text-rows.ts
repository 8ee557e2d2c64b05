// The rows that the Hugging Face `datasets` loaders yield for the reference corpora, rebuilt from the raw files,
// because the papers' evaluation text is a join of those rows (reference-semantics.md, "Evaluation text exactly as
// the papers build it"). Python semantics are reproduced where they matter: text-mode universal newlines,
// iteration over a file's lines with their "\n" kept, and str.strip()'s whitespace set.

/** Python's str.isspace() characters (Unicode White_Space-ish set CPython uses, incl. \x1c-\x1f and \x85). */
const PY_SPACE = '\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';
const isPySpace = (c: string): boolean => PY_SPACE.includes(c);

/** Python `s.strip()`. */
export function pythonStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isPySpace(s[a]!)) a++;
  while (b > a && isPySpace(s[b - 1]!)) b--;
  return s.slice(a, b);
}

/** Python text-mode reading with newline=None: "\r\n" and lone "\r" become "\n". */
export function universalNewlines(text: string): string {
  return text.replace(/\r\n?/g, '\n');
}

/** `for line in f` over a text-mode file: each line keeps its "\n"; a last line without one is kept as is. */
export function pythonFileLines(text: string): string[] {
  const t = universalNewlines(text);
  const lines: string[] = [];
  let start = 0;
  for (;;) {
    const nl = t.indexOf('\n', start);
    if (nl < 0) break;
    lines.push(t.slice(start, nl + 1));
    start = nl + 1;
  }
  if (start < t.length) lines.push(t.slice(start));
  return lines;
}

/**
 * HF `wikitext` loader (huggingface/datasets datasets/wikitext/wikitext.py): one row per line of wiki.*.raw, the
 * line's trailing "\n" kept; a line that is only whitespace becomes "".
 */
export function wikitextRows(fileText: string): string[] {
  return pythonFileLines(fileText).map((line) => (pythonStrip(line) === '' ? '' : line));
}

/** HF `ptb_text_only` loader: one row per line, field `sentence` = line.strip(). */
export function ptbSentences(fileText: string): string[] {
  return pythonFileLines(fileText).map(pythonStrip);
}

/** Removes a leading UTF-8 byte-order mark (U+FEFF), as Python's utf-8-sig codec would. */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
