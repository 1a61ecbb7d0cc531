"""PyTorch / transformers baseline for `albert bench`: the same model shapes, inputs and FLOP
count, so the two can be compared in one session on one machine.

    pip install torch transformers      # ~4 minutes, ~3 GB (the PyPI wheel pulls CUDA libraries)
    python3 benches/torch_albert.py forward --batch 8 --seq 128
    python3 benches/torch_albert.py train --batch 8 --seq 128 --mlm-gather

forward: AlbertForPreTraining under no_grad (MLM logits at every position + SOP logits).
train: forward with MLM + SOP loss and backward, no optimizer. With --mlm-gather the MLM head
scores only the masked positions (as the original ALBERT and our engine do); without it,
transformers' default of scoring every position.
Prints one JSON line: median_ms, tokens_per_s, gflops (matmul FLOPs counted as in perf.md).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import AlbertConfig, AlbertForPreTraining

PRESETS = {"base": (12, 768, 12, 3072), "large": (24, 1024, 16, 4096), "tiny": (4, 128, 2, 512)}


def forward_flops(c, b, s, scored):
    h, e, i, v, l = c.hidden_size, c.embedding_size, c.intermediate_size, c.vocab_size, c.num_hidden_layers
    return b * s * (l * (8 * h * h + 4 * h * i + 4 * s * h) + 2 * e * h) + b * 2 * h * h + scored * (2 * h * e + 2 * e * v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["forward", "train"])
    ap.add_argument("--preset", default="base", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mlm-prob", type=float, default=0.15)
    ap.add_argument("--mlm-gather", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    layers, hidden, heads, inter = PRESETS[a.preset]
    max_pos = 128 if a.preset == "tiny" else 512
    cfg = AlbertConfig(vocab_size=8000 if a.preset == "tiny" else 30000, embedding_size=64 if a.preset == "tiny" else 128, hidden_size=hidden,
                       num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter,
                       max_position_embeddings=max_pos, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       classifier_dropout_prob=0.0, hidden_act="gelu_new")
    model = AlbertForPreTraining(cfg).train()
    b, s = a.batch, a.seq
    ids = torch.randint(5, cfg.vocab_size, (b, s))
    types = (torch.arange(s) >= s // 2).long().expand(b, s)
    labels = torch.where(torch.rand(b, s) < a.mlm_prob, ids, torch.full_like(ids, -100))
    sop = torch.arange(b) % 2
    masked = int((labels != -100).sum())

    def step():
        t0 = time.perf_counter()
        if a.what == "forward":
            with torch.no_grad():
                model(input_ids=ids, token_type_ids=types)
        elif a.mlm_gather:
            out = model.albert(input_ids=ids, token_type_ids=types)
            rows = (labels.view(-1) != -100).nonzero().squeeze(1)
            seq = out.last_hidden_state.reshape(b * s, -1)[rows]
            mlm = F.cross_entropy(model.predictions(seq), labels.view(-1)[rows])
            loss = mlm + F.cross_entropy(model.sop_classifier(out.pooler_output), sop)
            loss.backward()
        else:
            model(input_ids=ids, token_type_ids=types, labels=labels, sentence_order_label=sop).loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    for _ in range(a.warmup):
        step()
    times = [step() for _ in range(a.iters)]
    t = statistics.median(times)
    scored = b * s if (a.what == "forward" or not a.mlm_gather) else masked
    flops = forward_flops(cfg, b, s, scored) * (1 if a.what == "forward" else 3)
    print(json.dumps({"bench": a.what, "impl": "pytorch", "torch": torch.__version__, "preset": a.preset,
                      "batch": b, "seq": s, "threads": a.threads, "mlm_gather": a.mlm_gather,
                      "median_ms": t * 1e3, "tokens_per_s": b * s / t, "gflops": flops / t / 1e9,
                      "times_ms": [x * 1e3 for x in times]}))


if __name__ == "__main__":
    main()
