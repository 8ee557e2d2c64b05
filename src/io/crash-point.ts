// Named points where a test can make the process die as kill -9 would (TOPIARY_CRASH_AT=name), so the resume test
// hits the few instants a timer seldom lands on: between a shard's rewrite and the removal of its old copy, in the
// middle of the final renames. Does nothing unless that variable names the point.

export type CrashPoint = 'shard-rewritten' | 'finish-renaming' | 'before-folder-rename' | 'after-folder-rename';

export function crashPoint(name: CrashPoint): void {
  if (process.env['TOPIARY_CRASH_AT'] === name) process.kill(process.pid, 'SIGKILL');
}
