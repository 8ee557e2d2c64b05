// Plain float64 linear algebra for tests only (O(n³) JS loops, slow on purpose): the reference's chain
// cholesky(H) → cholesky_inverse → cholesky(upper=True), and a seeded normal generator.

/** Lower Cholesky factor L (H = LLᵀ) of a symmetric positive definite n×n matrix; throws when not PD. */
export function choleskyLower(H: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = H[j * n + j]!;
    for (let k = 0; k < j; k++) s -= L[j * n + k]! ** 2;
    if (!(s > 0)) throw new Error(`not positive definite at ${j}`);
    const d = Math.sqrt(s);
    L[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let v = H[i * n + j]!;
      for (let k = 0; k < j; k++) v -= L[i * n + k]! * L[j * n + k]!;
      L[i * n + j] = v / d;
    }
  }
  return L;
}

/** (LLᵀ)⁻¹ from the lower factor (torch.cholesky_inverse). */
export function choleskyInverse(L: Float64Array, n: number): Float64Array {
  const Li = new Float64Array(n * n); // L⁻¹, lower
  for (let j = 0; j < n; j++) {
    Li[j * n + j] = 1 / L[j * n + j]!;
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s += L[i * n + k]! * Li[k * n + j]!;
      Li[i * n + j] = -s / L[i * n + i]!;
    }
  }
  const out = new Float64Array(n * n); // L⁻ᵀL⁻¹
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += Li[k * n + i]! * Li[k * n + j]!;
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/** The reference's Hinv: upper U with UᵀU = (H + λI)⁻¹, via cholesky → cholesky_inverse → cholesky(upper). */
export function referenceInverseFactor(H: ArrayLike<number>, n: number, damp: number): Float64Array {
  const Hd = Float64Array.from(H as ArrayLike<number>);
  for (let i = 0; i < n; i++) Hd[i * n + i] = Math.fround(Hd[i * n + i]! + damp);
  const inv = choleskyInverse(choleskyLower(Hd, n), n);
  const L2 = choleskyLower(inv, n);
  const U = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) U[i * n + j] = L2[j * n + i]!;
  return U;
}

/** Deterministic N(0, 1) samples (mulberry32 + Box–Muller). */
export function normals(count: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = Math.max(uniform(), 1e-12);
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** A random SPD Hessian-like matrix H = (2/T)·XᵀX for X [T, n] with correlated, unevenly scaled columns. */
export function randomHessian(n: number, tokens: number, seed: number): Float32Array {
  const X = normals(tokens * n, seed);
  const scale = normals(n, seed + 1);
  const shared = normals(tokens, seed + 2);
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < n; j++) X[t * n + j] = (X[t * n + j]! + 0.5 * shared[t]!) * Math.exp(0.5 * scale[j]!);
  }
  const H = new Float32Array(n * n);
  const acc = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    acc.fill(0);
    for (let t = 0; t < tokens; t++) {
      const xi = X[t * n + i]!;
      if (xi === 0) continue;
      for (let j = 0; j <= i; j++) acc[j] += xi * X[t * n + j]!;
    }
    for (let j = 0; j <= i; j++) {
      H[i * n + j] = (2 / tokens) * acc[j]!;
      H[j * n + i] = H[i * n + j]!;
    }
  }
  return H;
}
