// The Hugging Face cache layout, shared with Python's huggingface_hub so that a model downloaded by either is found
// by the other (huggingface_hub/file_download.py, `hf_hub_download` / `_create_symlink`):
//   $HF_HUB_CACHE/models--{org}--{name}/blobs/{etag}                 file contents, named by the Hub's ETag
//                                      /snapshots/{commit}/{path}    relative symlinks into blobs/
//                                      /refs/{revision}              the commit a branch or tag pointed to
// The ETag is the LFS sha256 for LFS files and the git blob sha1 for the others.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (huggingface_hub constants.py). */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['HF_HUB_CACHE'] ?? env['HUGGINGFACE_HUB_CACHE'];
  if (explicit) return explicit;
  const home = env['HF_HOME'] ?? join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'huggingface');
  return join(home, 'hub');
}

/** The Hub endpoint: $HF_ENDPOINT (as huggingface_hub reads it), else huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env['HF_ENDPOINT'] ?? 'https://huggingface.co').replace(/\/+$/, '');
}

export function isOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = (env['HF_HUB_OFFLINE'] ?? '').toLowerCase();
  return v === '1' || v === 'true' || v === 'yes' || v === 'on';
}

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

export class RepoCache {
  readonly root: string;

  constructor(cacheDir: string, readonly repo: string) {
    this.root = join(cacheDir, `models--${repo.split('/').join('--')}`);
  }

  blob(etag: string): string {
    return join(this.root, 'blobs', etag);
  }

  snapshot(commit: string): string {
    return join(this.root, 'snapshots', commit);
  }

  ref(revision: string): string {
    return join(this.root, 'refs', revision);
  }

  /** The commit a revision names in the cache: itself when it is a hash, else what refs/ recorded; null if unknown. */
  commitOf(revision: string): string | null {
    if (COMMIT_HASH.test(revision)) return revision;
    try {
      const commit = readFileSync(this.ref(revision), 'utf8').trim();
      return COMMIT_HASH.test(commit) ? commit : null;
    } catch {
      return null;
    }
  }
}
