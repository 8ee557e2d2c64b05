// A small builder for ONNX graphs (via onnx-proto): named inputs, initializers, nodes with attributes, outputs.
// Topiary builds every heavy computation as such a graph at run time and runs it on onnxruntime-node.

import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** ONNX opset used by every graph (17: LayerNormalization; ORT accepts it with IR version 8). */
export const OPSET = 17;

export type ElemType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool';
const ELEM: Record<ElemType, number> = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11 };

export type Dim = number | string;
export type AttrValue = number | string | number[] | { float: number } | { floats: number[] } | { tensor: ConstTensor };

export interface ConstTensor {
  readonly type: 'float32' | 'int64';
  readonly dims: readonly number[];
  readonly values: Float32Array | readonly number[];
}

const A = onnx.AttributeProto.AttributeType;

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: A.INT, i: v } : { name, type: A.FLOAT, f: v };
  if (typeof v === 'string') return { name, type: A.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: A.INTS, ints: v };
  if ('float' in v) return { name, type: A.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: A.FLOATS, floats: v.floats };
  return { name, type: A.TENSOR, t: tensorProto(`${name}_value`, v.tensor) };
}

function tensorProto(name: string, t: ConstTensor): onnxProto.onnx.ITensorProto {
  if (t.type === 'float32') {
    const f = t.values instanceof Float32Array ? t.values : Float32Array.from(t.values);
    return { name, dims: [...t.dims], dataType: ELEM.float32, rawData: new Uint8Array(f.buffer, f.byteOffset, f.byteLength) };
  }
  const b = BigInt64Array.from((t.values as readonly number[]).map((x) => BigInt(x)));
  return { name, dims: [...t.dims], dataType: ELEM.int64, rawData: new Uint8Array(b.buffer) };
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: ELEM[type], shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly inits: onnxProto.onnx.ITensorProto[] = [];
  private counter = 0;

  constructor(readonly name: string) {}

  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** A constant baked into the graph (ORT may pre-pack it: useful for weights reused across many runs). */
  initializer(name: string, t: ConstTensor): string {
    this.inits.push(tensorProto(name, t));
    return name;
  }

  constF32(values: readonly number[] | Float32Array, dims: readonly number[] = [values.length]): string {
    return this.initializer(this.fresh('c'), { type: 'float32', dims, values: values instanceof Float32Array ? values : Float32Array.from(values) });
  }

  constI64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.initializer(this.fresh('c'), { type: 'int64', dims, values });
  }

  /** Add a node; returns its output names (one fresh name per output unless given). */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, nOutputs = 1, outNames?: readonly string[]): string[] {
    const output = outNames ? [...outNames] : Array.from({ length: nOutputs }, () => this.fresh(opType));
    this.nodes.push({ opType, input: [...inputs], output, name: this.fresh(`n_${opType}`), attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) });
    return output;
  }

  /** Single-output node. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}): string {
    return this.node(opType, inputs, attrs)[0]!;
  }

  output(value: string, name: string, type: ElemType, dims: readonly Dim[]): void {
    if (value !== name) this.node('Identity', [value], {}, 1, [name]);
    this.outputs.push(valueInfo(name, type, dims));
  }

  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  toBytes(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: 'topiary',
      graph: { name: this.name, node: this.nodes, input: this.inputs, output: this.outputs, initializer: this.inits },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
