# The yardstick of issue 15: the original SparseGPT code (IST-DASLab/sparsegpt: sparsegpt.py's SparseGPT class, used
# as its llama.py's llama_sequential uses it) pruning a local Llama folder to 50 % from a Topiary calibration-tokens
# file, so both tools prune the same model from the same token ids. Prints one JSON line: wall seconds, peak RSS, peak
# CUDA memory. Not part of the test suite; scripts/bench-gpu.sh runs it where PyTorch and transformers are installed.
#
#   SPARSEGPT_REF=DIR python3 scripts/reference-sparsegpt.py MODEL_DIR TOKENS.safetensors --device cpu|cuda
#       [--threads N] [--dtype float32|float16] [--sparsity 0.5] [--blocksize 128] [--percdamp 0.01]
#
# DIR is a checkout of the reference repository (its sparsegpt.py and quant.py); its code is not in this repository.
# Differences from llama.py, all forced by current transformers: the layer-0 Catcher keeps every keyword argument the
# model passes (position embeddings, masks) and the layers are replayed with them, since transformers ≥ 4.48 decoder
# layers need position_embeddings; a layer may return a tensor or a tuple. Everything else follows llama_sequential:
# one Hessian per linear (no sharing across q/k/v), all linears of a layer at once (not --true-sequential), the
# layer's outputs recomputed with the pruned weights before the next layer.
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn


def find_layers(module, layers=(nn.Linear,), name=''):
    """Every nn.Linear below module by its dotted name (what the reference's modelutils.find_layers returns)."""
    if type(module) in layers:
        return {name: module}
    res = {}
    for child_name, child in module.named_children():
        res.update(find_layers(child, layers=layers, name=name + '.' + child_name if name != '' else child_name))
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument('model')
    p.add_argument('tokens')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--dtype', default='float32')
    p.add_argument('--sparsity', type=float, default=0.5)
    p.add_argument('--blocksize', type=int, default=128)
    p.add_argument('--percdamp', type=float, default=0.01)
    args = p.parse_args()

    sys.path.insert(0, os.environ['SPARSEGPT_REF'])
    from sparsegpt import SparseGPT  # noqa: E402 (the reference's class)
    from safetensors.numpy import load_file
    from transformers import LlamaForCausalLM

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    t0 = time.time()
    ids = torch.from_numpy(load_file(args.tokens)['input_ids'].astype(np.int64))
    nsamples, seqlen = ids.shape
    model = LlamaForCausalLM.from_pretrained(args.model, dtype=dtype)
    model.config.use_cache = False
    model.eval()
    model.to(dev)
    layers = model.model.layers

    inps = torch.zeros((nsamples, seqlen, model.config.hidden_size), dtype=dtype, device=dev)
    cache = {'i': 0, 'kwargs': None}

    class Catcher(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module
            self.attention_type = getattr(module, 'attention_type', 'full_attention')

        def forward(self, inp, *a, **kwargs):
            inps[cache['i']] = inp
            cache['i'] += 1
            cache['kwargs'] = kwargs
            raise ValueError

    with torch.no_grad():
        layers[0] = Catcher(layers[0])
        for j in range(nsamples):
            try:
                model(ids[j:j + 1].to(dev))
            except ValueError:
                pass
        layers[0] = layers[0].module
        kwargs = cache['kwargs']
        outs = torch.zeros_like(inps)

        def run(layer, j):
            o = layer(inps[j].unsqueeze(0), **kwargs)
            o = o[0] if isinstance(o, (tuple, list)) else o
            outs[j] = o.reshape(outs[j].shape)

        for i in range(len(layers)):
            layer = layers[i]
            subset = find_layers(layer)
            gpts = {name: SparseGPT(subset[name]) for name in subset}

            def add_batch(name):
                def tmp(_, inp, out):
                    gpts[name].add_batch(inp[0].data, out.data)
                return tmp

            handles = [subset[name].register_forward_hook(add_batch(name)) for name in subset]
            for j in range(nsamples):
                run(layer, j)
            for h in handles:
                h.remove()
            for name in subset:
                gpts[name].fasterprune(args.sparsity, prunen=0, prunem=0, percdamp=args.percdamp, blocksize=args.blocksize)
                gpts[name].free()
            for j in range(nsamples):
                run(layer, j)
            del gpts
            inps, outs = outs, inps

    if dev.type == 'cuda':
        torch.cuda.synchronize()
    wall = time.time() - t0
    zeros = sum(int((m.weight == 0).sum()) for m in find_layers(layers).values())
    numel = sum(m.weight.numel() for m in find_layers(layers).values())
    res = {
        'tool': 'reference', 'device': args.device, 'threads': torch.get_num_threads(), 'dtype': args.dtype,
        'wall': wall, 'peakRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        'peakCudaMiB': torch.cuda.max_memory_allocated() / 2**20 if dev.type == 'cuda' else None,
        'sparsity': zeros / numel, 'torch': torch.__version__,
    }
    print(json.dumps(res), flush=True)


if __name__ == '__main__':
    main()
