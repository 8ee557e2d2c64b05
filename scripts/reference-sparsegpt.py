# The yardstick of issue 15: the original SparseGPT code (IST-DASLab/sparsegpt: sparsegpt.py's SparseGPT class, used
# as its llama.py's llama_sequential uses it) pruning a local Llama folder to 50 % from a Topiary calibration-tokens
# file, so both tools prune the same model from the same token ids. Prints one JSON line: wall seconds, peak RSS, peak
# CUDA memory. Not part of the test suite; scripts/bench-yardstick.sh runs it (and scripts/bench-gpu.sh through it).
#
#   SPARSEGPT_REF=DIR python3 scripts/reference-sparsegpt.py MODEL_DIR TOKENS.safetensors --device cpu|cuda
#       [--threads N] [--dtype float32|float16] [--sparsity 0.5] [--blocksize 128] [--percdamp 0.01]
#       [--model-impl auto|transformers|plain]
#
# DIR is a checkout of the reference repository (its sparsegpt.py and quant.py); its code is not in this repository.
# The model: transformers' LlamaForCausalLM where transformers is installed, else (and with --model-impl plain)
# PlainLlama below, the same decoder-layer math in plain torch read from a single-file generated Llama, so a torch
# without transformers (Debian's python3-torch) can run the yardstick; the reference's one use of transformers (an
# isinstance test against Conv1D) then gets a stand-in class. With transformers, differences from llama.py are all
# forced by current transformers: the layer-0 Catcher keeps every keyword argument the model passes (position
# embeddings, masks) and the layers are replayed with them, since transformers ≥ 4.48 decoder layers need
# position_embeddings; a layer may return a tensor or a tuple. Either way the loop follows llama_sequential: one
# Hessian per linear (no sharing across q/k/v), all linears of a layer at once (not --true-sequential), the layer's
# outputs recomputed with the pruned weights before the next layer.
import argparse
import json
import math
import os
import resource
import struct
import sys
import types
import time

import numpy as np
import torch
import torch.nn as nn


class PlainLlamaLayer(nn.Module):
    """A Llama decoder layer written out in torch (transformers' LlamaDecoderLayer math: pre-RMSNorm, rotate-half
    rope, GQA causal attention, SwiGLU MLP), for machines whose torch has no transformers beside it. Its nn.Linear
    children carry transformers' names, so the reference's hooks and solver see the same seven linears."""

    def __init__(self, cfg, tensors, prefix, dtype):
        super().__init__()
        h, inter = cfg['hidden_size'], cfg['intermediate_size']
        self.heads, self.kv = cfg['num_attention_heads'], cfg.get('num_key_value_heads', cfg['num_attention_heads'])
        self.hd = cfg.get('head_dim') or h // self.heads
        self.eps, self.theta = cfg.get('rms_norm_eps', 1e-6), cfg.get('rope_theta', 10000.0)

        def lin(name, i, o):
            m = nn.Linear(i, o, bias=False)
            m.weight.data = tensors[prefix + name + '.weight'].to(dtype)
            return m
        self.self_attn = nn.Module()
        self.self_attn.q_proj = lin('self_attn.q_proj', h, self.heads * self.hd)
        self.self_attn.k_proj = lin('self_attn.k_proj', h, self.kv * self.hd)
        self.self_attn.v_proj = lin('self_attn.v_proj', h, self.kv * self.hd)
        self.self_attn.o_proj = lin('self_attn.o_proj', self.heads * self.hd, h)
        self.mlp = nn.Module()
        self.mlp.gate_proj = lin('mlp.gate_proj', h, inter)
        self.mlp.up_proj = lin('mlp.up_proj', h, inter)
        self.mlp.down_proj = lin('mlp.down_proj', inter, h)
        self.ln1 = tensors[prefix + 'input_layernorm.weight'].to(dtype)
        self.ln2 = tensors[prefix + 'post_attention_layernorm.weight'].to(dtype)

    def norm(self, x, w):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return w * xf.to(x.dtype)

    def rope(self, x, T):
        inv = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat((f, f), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        x1, x2 = x[..., : self.hd // 2], x[..., self.hd // 2:]
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    def forward(self, x):
        B, T, _ = x.shape
        a = self.self_attn
        n = self.norm(x, self.ln1)
        q = self.rope(a.q_proj(n).view(B, T, self.heads, self.hd).transpose(1, 2), T)
        k = self.rope(a.k_proj(n).view(B, T, self.kv, self.hd).transpose(1, 2), T)
        v = a.v_proj(n).view(B, T, self.kv, self.hd).transpose(1, 2)
        rep = self.heads // self.kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf'))
        o = (torch.softmax(att.float(), dim=-1).to(q.dtype) @ v).transpose(1, 2).reshape(B, T, -1)
        h = x + a.o_proj(o)
        n = self.norm(h, self.ln2)
        m = self.mlp
        return h + m.down_proj(nn.functional.silu(m.gate_proj(n)) * m.up_proj(n))


def read_safetensors(path):
    """name → float32/int torch tensor of one safetensors file (bf16 widened by hand: numpy has no bfloat16)."""
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in head.items():
        if name == '__metadata__':
            continue
        b = data[t['data_offsets'][0]:t['data_offsets'][1]]
        if t['dtype'] == 'BF16':
            a = (np.frombuffer(b, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(b, dtype={'F32': '<f4', 'F16': '<f2', 'I32': '<i4', 'I64': '<i8'}[t['dtype']]).astype(
                np.float32 if t['dtype'] in ('F32', 'F16') else np.int64)
        out[name] = torch.from_numpy(a.reshape(t['shape']).copy())
    return out


class PlainLlama:
    """What llama_sequential uses of a LlamaForCausalLM, from a single-file generated Llama folder: the embedding
    (layer 0's inputs) and the decoder layers."""

    def __init__(self, folder, dtype):
        cfg = json.load(open(os.path.join(folder, 'config.json')))
        tensors = read_safetensors(os.path.join(folder, 'model.safetensors'))
        self.hidden = cfg['hidden_size']
        self.embed = tensors['model.embed_tokens.weight'].to(dtype)
        self.layers = nn.ModuleList(
            PlainLlamaLayer(cfg, tensors, f'model.layers.{i}.', dtype) for i in range(cfg['num_hidden_layers']))


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
    p.add_argument('--model-impl', choices=['auto', 'transformers', 'plain'], default='auto',
                   help='transformers LlamaForCausalLM, or the torch-only PlainLlama (auto: plain when transformers is missing)')
    args = p.parse_args()

    impl = args.model_impl
    if impl == 'auto':
        try:
            import transformers  # noqa: F401
            impl = 'transformers'
        except ImportError:
            impl = 'plain'
    if impl == 'plain':
        # The reference imports transformers only to test isinstance(layer, transformers.Conv1D), and calls
        # torch.cuda.synchronize() after each solve: a stand-in module and a no-op on a CPU-only torch.
        if 'transformers' not in sys.modules:
            try:
                import transformers  # noqa: F401
            except ImportError:
                stub = types.ModuleType('transformers')
                stub.Conv1D = type('Conv1D', (nn.Module,), {})
                sys.modules['transformers'] = stub
        if not torch.cuda.is_available():
            torch.cuda.synchronize = lambda *a, **k: None
    sys.path.insert(0, os.environ['SPARSEGPT_REF'])
    from sparsegpt import SparseGPT  # noqa: E402 (the reference's class)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    t0 = time.time()
    ids = read_safetensors(args.tokens)['input_ids']
    nsamples, seqlen = ids.shape
    if impl == 'plain':
        report(args, impl, t0, dev, prune_plain(PlainLlama(args.model, dtype), ids, dev, args, SparseGPT))
        return
    from transformers import LlamaForCausalLM
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

        def run(layer, x):
            o = layer(x.unsqueeze(0), **kwargs)
            o = o[0] if isinstance(o, (tuple, list)) else o
            return o.reshape(x.shape)

        prune_sequential(layers, inps, run, args, SparseGPT)

    report(args, impl, t0, dev, layers)


def prune_sequential(layers, inps, run, args, SparseGPT):
    """llama_sequential's layer loop: hooks collect H, every linear solved, the layer replayed with pruned weights."""
    outs = torch.zeros_like(inps)
    for i in range(len(layers)):
        layer = layers[i]
        subset = find_layers(layer)
        gpts = {name: SparseGPT(subset[name]) for name in subset}

        def add_batch(name):
            def tmp(_, inp, out):
                gpts[name].add_batch(inp[0].data, out.data)
            return tmp

        handles = [subset[name].register_forward_hook(add_batch(name)) for name in subset]
        for j in range(inps.shape[0]):
            outs[j] = run(layer, inps[j])
        for h in handles:
            h.remove()
        for name in subset:
            gpts[name].fasterprune(args.sparsity, prunen=0, prunem=0, percdamp=args.percdamp, blocksize=args.blocksize)
            gpts[name].free()
        for j in range(inps.shape[0]):
            outs[j] = run(layer, inps[j])
        del gpts
        inps, outs = outs, inps


def prune_plain(model, ids, dev, args, SparseGPT):
    layers = model.layers.to(dev)
    with torch.no_grad():
        inps = model.embed[ids].to(dev)  # a Llama's layer-0 input is the embedding row (no scaling)
        prune_sequential(layers, inps, lambda layer, x: layer(x.unsqueeze(0))[0], args, SparseGPT)
    return layers


def report(args, impl, t0, dev, layers):
    if dev.type == 'cuda':
        torch.cuda.synchronize()
    wall = time.time() - t0
    zeros = sum(int((m.weight == 0).sum()) for m in find_layers(layers).values())
    numel = sum(m.weight.numel() for m in find_layers(layers).values())
    res = {
        'tool': 'reference', 'model': impl, 'device': args.device, 'threads': torch.get_num_threads(), 'dtype': args.dtype,
        'wall': wall, 'peakRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        'peakCudaMiB': torch.cuda.max_memory_allocated() / 2**20 if dev.type == 'cuda' else None,
        'sparsity': zeros / numel, 'torch': torch.__version__,
    }
    print(json.dumps(res), flush=True)


if __name__ == '__main__':
    main()
