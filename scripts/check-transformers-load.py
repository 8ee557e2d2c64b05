# A consumer's check of a Topiary output folder: transformers loads it (AutoTokenizer + AutoModelForCausalLM, the
# consumer's own loading code) and computes perplexity the way the SparseGPT reference does (llama.py's llama_eval:
# the evaluation text tokenized once, cut into len // seqlen chunks, ppl = exp(mean chunk NLL)), to compare with what
# `topiary eval --json` printed for the same folder. Also compares transformers' token ids with Topiary's.
#
#   python3 scripts/check-transformers-load.py FOLDER --seqlen 256 --device cpu|cuda \
#       --case NAME TEXT[.gz] IDS.json[.gz] TOPIARY_EVAL.json [--case …]
#
# Prints one markdown row per case and a JSON line. Not part of the test suite: it needs PyTorch and transformers
# (scripts/bench-gpu.sh runs it on the GPU machine, which has them).
import argparse
import gzip
import json
import math

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def read(path):
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rt', encoding='utf-8', newline='') as f:
        return f.read()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('folder')
    p.add_argument('--seqlen', type=int, default=256)
    p.add_argument('--device', default='cpu')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--case', nargs=4, action='append', metavar=('NAME', 'TEXT', 'IDS', 'EVAL'), required=True)
    args = p.parse_args()
    import transformers
    tok = AutoTokenizer.from_pretrained(args.folder)
    model = AutoModelForCausalLM.from_pretrained(args.folder, dtype=torch.float32).to(args.device).eval()
    rows = []
    for name, text_path, ids_path, eval_path in args.case:
        theirs = tok(read(text_path)).input_ids
        ours = json.loads(read(ids_path))
        first_diff = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), None)
        if first_diff is None and len(theirs) != len(ours):
            first_diff = min(len(theirs), len(ours))
        ids = torch.tensor(ours, dtype=torch.long)
        n = ids.numel() // args.seqlen
        chunks = ids[: n * args.seqlen].view(n, args.seqlen)
        nll_sum = 0.0
        with torch.no_grad():
            for s in range(0, n, args.batch):
                batch = chunks[s: s + args.batch].to(args.device)
                logits = model(batch).logits.float()
                loss = torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction='none')
                nll_sum += loss.view(batch.shape[0], -1).mean(1).double().sum().item()
        ppl = math.exp(nll_sum / n)
        topiary = json.load(open(eval_path))['ppl']
        rows.append({'case': name, 'chunks': n, 'transformers_ppl': ppl, 'topiary_ppl': topiary,
                     'rel_diff': abs(ppl - topiary) / topiary, 'ids_equal': first_diff is None,
                     'first_id_diff': first_diff, 'ids': [len(theirs), len(ours)]})
    print('| case | chunks | transformers ppl | topiary ppl | rel. diff | token ids equal |')
    print('|---|---:|---:|---:|---:|---|')
    for r in rows:
        same = 'yes' if r['ids_equal'] else f"no (first at {r['first_id_diff']}; {r['ids'][0]} vs {r['ids'][1]} ids)"
        print(f"| {r['case']} | {r['chunks']} | {r['transformers_ppl']:.4f} | {r['topiary_ppl']:.4f} | {r['rel_diff']:.2e} | {same} |")
    print(json.dumps({'transformers': transformers.__version__, 'torch': torch.__version__, 'device': args.device, 'rows': rows}))


if __name__ == '__main__':
    main()
