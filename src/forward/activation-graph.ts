// The MLP activations as ONNX nodes, one definition for the decoder-block graph and the MoE expert graph, each
// following the transformers activation of the same name (activations.py).

import type { Activation } from '../model/arch.js';
import type { GraphBuilder } from '../engine/graph-builder.js';

/** act(x) appended to `g`; returns the output's name. */
export function addActivation(g: GraphBuilder, kind: Activation, x: string): string {
  const scalar = (v: number) => g.constF32([v], []);
  switch (kind) {
    case 'silu': return g.op('Mul', [x, g.op('Sigmoid', [x])]);
    case 'relu': return g.op('Relu', [x]);
    case 'relu2': { const r = g.op('Relu', [x]); return g.op('Mul', [r, r]); } // ReLUSquaredActivation
    case 'quick_gelu': return g.op('Mul', [x, g.op('Sigmoid', [g.op('Mul', [x, scalar(1.702)])])]); // QuickGELUActivation
    case 'gelu': {
      // 0.5·x·(1 + erf(x/√2)), torch's exact gelu.
      const e = g.op('Erf', [g.op('Mul', [x, scalar(Math.SQRT1_2)])]);
      return g.op('Mul', [g.op('Mul', [x, scalar(0.5)]), g.op('Add', [e, scalar(1)])]);
    }
    case 'gelu_tanh': {
      // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), HF NewGELU / gelu(approximate='tanh').
      const x3 = g.op('Mul', [g.op('Mul', [x, x]), x]);
      const inner = g.op('Mul', [g.op('Add', [x, g.op('Mul', [x3, scalar(0.044715)])]), scalar(Math.sqrt(2 / Math.PI))]);
      return g.op('Mul', [g.op('Mul', [x, scalar(0.5)]), g.op('Add', [g.op('Tanh', [inner]), scalar(1)])]);
    }
  }
}
