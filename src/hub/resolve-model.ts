// The one entry the commands call: turn a model argument (folder, `org/name`, `org/name@revision`) into a local
// folder, fetching from the Hub into its cache when needed. Settings come from the same environment variables
// Python's huggingface_hub reads: HF_TOKEN, HF_HUB_OFFLINE, HF_HUB_CACHE / HF_HOME, HF_ENDPOINT.

import { hubCacheDir, hubEndpoint, isOffline } from './hub-cache.js';
import { fetchModel } from './hub-download.js';
import { parseModelRef } from './model-ref.js';

export interface ResolveOptions {
  readonly log: (msg: string) => void;
  readonly onProgress?: (file: string, done: number, total: number) => void;
  readonly env?: NodeJS.ProcessEnv;
}

export async function resolveModelDir(arg: string, o: ResolveOptions): Promise<string> {
  const ref = parseModelRef(arg);
  if (ref.kind === 'folder') return ref.path;
  const env = o.env ?? process.env;
  const token = env['HF_TOKEN'] ?? env['HUGGING_FACE_HUB_TOKEN'] ?? null;
  return fetchModel(ref.repo, ref.revision, {
    cacheDir: hubCacheDir(env),
    endpoint: hubEndpoint(env),
    token: token === '' ? null : token,
    offline: isOffline(env),
    log: o.log,
    ...(o.onProgress !== undefined ? { onProgress: o.onProgress } : {}),
  });
}
