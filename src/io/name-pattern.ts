// Tensor-name patterns given by the user (`--ignore REGEX`, recipe `pattern` fields), matched with a linear-time
// engine (re2js, a pure-JS port of RE2) instead of JavaScript's backtracking RegExp: a pattern such as `(a+)+$`
// against a long tensor name would otherwise run for hours. RE2 has no backreferences and no lookaround; a pattern
// using them is refused with a clear error naming where it came from.

import { RE2JS } from 're2js';

export class NamePatternError extends Error {
  constructor(readonly where: string, readonly pattern: string, detail: string) {
    super(`${where}: pattern ${JSON.stringify(pattern)} ${detail}`);
    this.name = 'NamePatternError';
  }
}

/** A compiled tensor-name pattern; `test` says whether it matches anywhere in a name (as RegExp.prototype.test). */
export class NamePattern {
  private constructor(
    /** The pattern as the user wrote it (JavaScript regular-expression syntax). */
    readonly source: string,
    private readonly re: RE2JS,
  ) {}

  /**
   * Compiles `source`; `where` names its origin for errors (`--ignore`, `--recipe FILE: rule 2`). JavaScript-only
   * spellings (named groups `(?<n>…)`, `\/`) are translated first.
   */
  static compile(source: string, where: string): NamePattern {
    let re: RE2JS;
    try {
      re = RE2JS.compile(RE2JS.translateRegExp(source));
    } catch (e) {
      const detail = e instanceof Error ? e.message.replace(/\s+/g, ' ') : String(e);
      throw new NamePatternError(where, source, `is not a valid regular expression (${detail}; backreferences and lookaround are not supported: patterns are matched in linear time)`);
    }
    return new NamePattern(source, re);
  }

  test(name: string): boolean {
    return this.re.test(name);
  }
}
