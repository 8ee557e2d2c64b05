// Progress on stderr: a redrawn bar with an ETA when stderr is a terminal, plain lines otherwise (logs, CI), and
// nothing with --quiet. Work is counted in units the caller chooses (layers, linears, chunks).

export class Progress {
  private done = 0;
  private readonly t0 = performance.now();
  private lastLine = 0;
  private readonly tty: boolean;

  constructor(private readonly label: string, private readonly total: number, private readonly quiet = false) {
    this.tty = Boolean(process.stderr.isTTY);
  }

  /** Adds `n` finished units; `what` names the unit just finished. */
  tick(what: string, n = 1): void {
    this.done += n;
    if (this.quiet) return;
    const now = performance.now();
    const elapsed = (now - this.t0) / 1000;
    const eta = this.done > 0 ? (elapsed / this.done) * (this.total - this.done) : 0;
    const pct = this.total > 0 ? this.done / this.total : 1;
    if (this.tty) {
      const width = 24;
      const fill = Math.round(pct * width);
      process.stderr.write(`\r\x1b[K${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${this.done}/${this.total} ${formatSeconds(elapsed)} ETA ${formatSeconds(eta)} ${what}`);
      if (this.done >= this.total) process.stderr.write('\n');
    } else if (now - this.lastLine > 2000 || this.done >= this.total) {
      this.lastLine = now;
      process.stderr.write(`${this.label}: ${this.done}/${this.total} (${(pct * 100).toFixed(0)}%) ${formatSeconds(elapsed)} elapsed, ETA ${formatSeconds(eta)}: ${what}\n`);
    }
  }

  /** A message that does not disturb the bar. */
  log(msg: string): void {
    if (this.quiet) return;
    process.stderr.write(this.tty ? `\r\x1b[K${msg}\n` : `${msg}\n`);
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s - m * 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
