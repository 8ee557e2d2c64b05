// A dense row-major float32 matrix: the unit of data the solver and the engine exchange.

export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float32Array;
}

export function matrix(rows: number, cols: number, data?: Float32Array): Matrix {
  if (data && data.length !== rows * cols) throw new RangeError(`matrix ${rows}×${cols} needs ${rows * cols} values, got ${data.length}`);
  return { rows, cols, data: data ?? new Float32Array(rows * cols) };
}
