// The execution engine: onnxruntime-node sessions on one execution provider (--device cpu|cuda|webgpu), cached by a
// key that names the graph and its shapes, so each distinct graph is built and optimized once per run.

import * as ort from 'onnxruntime-node';
import type { GraphBuilder } from './graph-builder.js';

export const DEVICES = ['cpu', 'cuda', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];

export class DeviceError extends Error {
  constructor(readonly device: Device, cause: string) {
    super(`--device ${device}: the ${device} execution provider could not start (${cause.split('\n')[0]}). ${HOW_TO_GET[device]}`);
    this.name = 'DeviceError';
  }
}

const HOW_TO_GET: Record<Device, string> = {
  cpu: 'The CPU provider ships with onnxruntime-node; reinstall it with `npm ci`.',
  cuda: 'onnxruntime-node ships its CUDA provider as a separate download that .npmrc skips: run `ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` on a machine with CUDA 12 and cuDNN 9 (see README, "CUDA").',
  webgpu: 'The WebGPU provider needs a Vulkan driver: a GPU driver, or Mesa\'s lavapipe on a CPU-only machine (`sudo bash .ci/install-lavapipe.sh`, see README).',
};

export function parseDevice(s: string): Device {
  if ((DEVICES as readonly string[]).includes(s)) return s as Device;
  throw new Error(`--device: unknown device "${s}" (choose one of ${DEVICES.join(', ')})`);
}

/**
 * How ORT's CPU thread pools run (`--threads`). ORT's defaults (one intra-op thread per core, idle threads spinning
 * for work) are fastest on a quiet machine but lose badly beside other CPU-bound processes, because spinning workers
 * burn the cores the others need; eval/threads.md has the measurements behind DEFAULT_THREADING.
 */
export interface Threading {
  /** Intra-op threads, the calling thread included; 0 lets ORT choose (one per physical core). */
  readonly threads: number;
  /** Idle pool threads spin waiting for the next task (ORT's default) instead of sleeping at once. */
  readonly spinning: boolean;
}

export const DEFAULT_THREADING: Threading = { threads: 0, spinning: false };

let processThreading: Threading = DEFAULT_THREADING;

/**
 * Sets the threading of every Engine created from now on (the CLI's `--threads`): the pipeline and eval create their
 * own engines, so the flag reaches them through this one process-wide setting instead of through every job type.
 */
export function setThreading(t: Threading): void {
  processThreading = t;
}

export function currentThreading(): Threading {
  return processThreading;
}

/** `--threads N`: a positive integer (0 is not accepted: "ORT's choice" is the default, spelled by leaving it out). */
export function parseThreads(s: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1 || n > 1024) throw new Error(`--threads: expected a positive integer, got "${s}"`);
  return n;
}

export type Feeds = Record<string, ort.Tensor>;
export type Fetches = Record<string, ort.Tensor>;

export class Engine {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  /** Time spent inside session.run, per key prefix (for benchmarks). */
  readonly runSeconds = new Map<string, number>();

  readonly threading: Threading;

  /**
   * `intraOpThreads` overrides the process-wide thread count (tests pin 1 for reproducible reductions). `memArena`
   * keeps ORT's CPU arena: for a job with few sessions that run many times (eval), so large intermediates are not
   * mapped and faulted in afresh on every run.
   */
  constructor(readonly device: Device = 'cpu', intraOpThreads?: number, readonly memArena = false) {
    this.threading = intraOpThreads === undefined ? processThreading : { ...processThreading, threads: intraOpThreads };
  }

  /** The cached session for `key`, building the graph with `build` the first time. */
  session(key: string, build: () => GraphBuilder): Promise<ort.InferenceSession> {
    let s = this.sessions.get(key);
    if (!s) {
      s = this.create(build().toBytes());
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  async run(key: string, build: () => GraphBuilder, feeds: Feeds): Promise<Fetches> {
    const s = await this.session(key, build);
    const t0 = performance.now();
    const out = await s.run(feeds);
    const kind = key.split(':')[0]!;
    this.runSeconds.set(kind, (this.runSeconds.get(kind) ?? 0) + (performance.now() - t0) / 1000);
    return out;
  }

  private async create(bytes: Uint8Array): Promise<ort.InferenceSession> {
    const opts: ort.InferenceSession.SessionOptions = {
      executionProviders: [this.device],
      graphOptimizationLevel: 'all',
      // Sessions are many (one per graph shape) and each CPU arena keeps its peak: without arenas the prune job's
      // peak RSS halved (2113 -> 1136 MiB, scripts/bench-prune.js at hidden 1024) for ~3 % more time.
      enableCpuMemArena: this.memArena,
      // ORT's own log lines would precede (and garble) the one clear error Topiary raises.
      logSeverityLevel: 4,
      ...(this.threading.threads > 0 ? { intraOpNumThreads: this.threading.threads } : {}),
      // Graphs run one node at a time (sequential execution), so the inter-op pool only matters if ORT ever makes
      // one; keep it to the caller's thread.
      interOpNumThreads: 1,
      // Session config entries (onnxruntime_session_options_config_keys.h), as strings.
      extra: {
        'session.intra_op.allow_spinning': this.threading.spinning ? '1' : '0',
        'session.inter_op.allow_spinning': this.threading.spinning ? '1' : '0',
      },
    };
    // ORT's default logger prints provider failures itself; Topiary reports them as one clear error instead. Set
    // here, not at import: other packages (transformers.js) set this global when they load.
    ort.env.logLevel = 'fatal';
    try {
      return await ort.InferenceSession.create(bytes, opts);
    } catch (e) {
      const msg = (e as Error).message;
      if (this.device !== 'cpu' && /provider|adapter|cuda|webgpu|vulkan|dawn|\.so/i.test(msg)) throw new DeviceError(this.device, msg);
      throw e;
    }
  }

  /** Check that the provider starts (a tiny graph), so a bad --device fails before any heavy work. */
  async probe(): Promise<void> {
    const { GraphBuilder: GB } = await import('./graph-builder.js');
    const out = await this.run('probe', () => {
      const g = new GB('probe');
      const x = g.input('x', 'float32', [2]);
      g.output(g.op('Add', [x, x]), 'y', 'float32', [2]);
      return g;
    }, { x: new ort.Tensor('float32', new Float32Array([1, 2]), [2]) });
    const y = out['y']!.data as Float32Array;
    if (y[0] !== 2 || y[1] !== 4) throw new DeviceError(this.device, 'a probe graph returned wrong values');
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) {
      try { await (await s).release(); } catch { /* a failed session has nothing to release */ }
    }
  }
}

export function f32(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

export function i64(data: BigInt64Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', data, dims);
}

export { ort };
