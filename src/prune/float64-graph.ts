// All-float64 ONNX graphs for the inverse-Hessian factorization (src/prune/cholesky.ts), whose GEMMs run in double
// so the factor agrees with a float64 computation (README §6) even for ill-conditioned Hessians.
// GraphBuilder (src/engine/graph-builder.ts) has no float64 element type yet: a graph is declared with float32
// inputs/outputs and this subclass re-types every float32 input and output to DOUBLE when it is encoded. Only
// graphs without float32 constants may use it. Drop it once GraphBuilder's ElemType gains 'float64'.

import onnxProto from 'onnx-proto';
import { GraphBuilder } from '../engine/graph-builder.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const DOUBLE = onnx.TensorProto.DataType.DOUBLE;

export class Float64GraphBuilder extends GraphBuilder {
  override toBytes(): Uint8Array {
    const model = onnx.ModelProto.decode(super.toBytes());
    const graph = model.graph!;
    if ((graph.initializer ?? []).some((t) => t.dataType === FLOAT)) throw new Error(`graph ${this.name}: float32 constants cannot be re-typed to float64`);
    for (const v of [...(graph.input ?? []), ...(graph.output ?? [])]) {
      const t = v.type?.tensorType;
      if (t && t.elemType === FLOAT) t.elemType = DOUBLE;
    }
    return onnx.ModelProto.encode(model).finish();
  }
}
