// The versions a result was computed with (Topiary, onnxruntime-node, Node.js), recorded in reports and eval records.

import { readFileSync } from 'node:fs';
import { ort } from './engine.js';

export interface RuntimeVersions {
  readonly topiary: string;
  readonly 'onnxruntime-node': string;
  readonly node: string;
}

/** Topiary's package.json version (this module compiles to dist/src/engine/). */
export function topiaryVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export function runtimeVersions(): RuntimeVersions {
  return { topiary: topiaryVersion(), 'onnxruntime-node': ort.env.versions.node ?? 'unknown', node: process.versions.node };
}
