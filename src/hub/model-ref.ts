// hub/: where a model comes from before anything reads it — a local folder, or a Hugging Face Hub repo fetched into
// the Hugging Face cache. This file decides which one a command-line argument names.
//
// An existing path always wins (a folder called `org/name` in the working directory is a folder). Otherwise
// `org/name` or `org/name@revision` is a Hub model id, as `from_pretrained` accepts it; anything else is a folder
// that does not exist, reported as such by the model reader.

import { statSync } from 'node:fs';

export type ModelRef =
  | { readonly kind: 'folder'; readonly path: string }
  | { readonly kind: 'hub'; readonly repo: string; readonly revision: string };

// Hub repo names: letters, digits, '-', '_', '.', at most 96 characters per part (huggingface_hub's
// validate_repo_id); a revision is a branch, tag or commit hash (no spaces, no '..').
const REPO_PART = '[A-Za-z0-9][A-Za-z0-9._-]{0,95}';
const HUB_ID = new RegExp(`^(${REPO_PART}/${REPO_PART})(?:@([A-Za-z0-9._/-]{1,255}))?$`);

export function parseModelRef(arg: string): ModelRef {
  if (pathExists(arg)) return { kind: 'folder', path: arg };
  const m = HUB_ID.exec(arg);
  if (m === null || m[1] === undefined || arg.includes('..')) return { kind: 'folder', path: arg };
  return { kind: 'hub', repo: m[1], revision: m[2] ?? 'main' };
}

function pathExists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}
