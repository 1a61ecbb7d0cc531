"""PyTorch / transformers baseline for `albert bench`: the same model shapes, inputs and FLOP
count, so the two can be compared in one session on one machine.

    pip install torch transformers      # ~4 minutes, ~3 GB (the PyPI wheel pulls CUDA libraries)
    python3 benches/torch_albert.py forward --batch 8 --seq 128
    python3 benches/torch_albert.py train --batch 8 --seq 128 --mlm-gather
    python3 benches/torch_albert.py forward --batch 8 --seq 512 --encoder-only
    python3 benches/torch_albert.py gemm --m 4096 --n 512 --k 128 --trans-b
    python3 benches/torch_albert.py train --config path/to/config.json --threads 2

forward: AlbertForPreTraining under no_grad (MLM logits at every position + SOP logits); with
--encoder-only, AlbertModel (embeddings, encoder, pooler) under no_grad.
train: forward with MLM + SOP loss and backward, no optimizer. With --mlm-gather the MLM head
scores only the masked positions (as the original ALBERT and our engine do); without it,
transformers' default of scoring every position.
gemm: one torch.matmul of [m, k] by [k, n] (stored [n, k] and passed as a transposed view with
--trans-b), written into a preallocated output.
--config reads a Hugging Face config.json (`albert bench --vs-pytorch` hands its configuration over
this way); dropout is set to 0 as in the presets, since our bench runs without dropout.
Prints one JSON line: median_ms, tokens_per_s, gflops (matmul FLOPs counted as in perf.md),
peak_rss_mb (the process's maximum resident set, torch's import included).
"""
import argparse
import json
import resource
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
    ap.add_argument("what", choices=["gemm", "forward", "train"])
    ap.add_argument("--preset", default="base", choices=sorted(PRESETS))
    ap.add_argument("--config", help="a Hugging Face config.json (overrides --preset)")
    ap.add_argument("--encoder-only", action="store_true", help="forward: AlbertModel, no heads")
    ap.add_argument("--m", type=int, default=1024)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--trans-b", action="store_true")
    ap.add_argument("--trans-a", action="store_true", help="gemm: A stored [k, m], passed as a transposed view")
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
    if a.what == "gemm":
        return gemm(a)
    if a.config:
        cfg = AlbertConfig.from_json_file(a.config)
        cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = cfg.classifier_dropout_prob = 0.0
        name = a.config
    else:
        layers, hidden, heads, inter = PRESETS[a.preset]
        max_pos = 128 if a.preset == "tiny" else 512
        cfg = AlbertConfig(vocab_size=8000 if a.preset == "tiny" else 30000, embedding_size=64 if a.preset == "tiny" else 128, hidden_size=hidden,
                           num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter,
                           max_position_embeddings=max_pos, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                           classifier_dropout_prob=0.0, hidden_act="gelu_new")
        name = a.preset
    model = AlbertForPreTraining(cfg).train()
    b, s = a.batch, a.seq
    ids = torch.randint(5, cfg.vocab_size, (b, s))
    types = (torch.arange(s) >= s // 2).long().expand(b, s)
    labels = torch.where(torch.rand(b, s) < a.mlm_prob, ids, torch.full_like(ids, -100))
    sop = torch.arange(b) % 2
    masked = int((labels != -100).sum())

    def step():
        t0 = time.perf_counter()
        if a.what == "forward" and a.encoder_only:
            with torch.no_grad():
                model.albert(input_ids=ids, token_type_ids=types)
        elif a.what == "forward":
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
    if a.what == "forward" and a.encoder_only:
        scored = 0
    else:
        scored = b * s if (a.what == "forward" or not a.mlm_gather) else masked
    flops = forward_flops(cfg, b, s, scored) * (1 if a.what == "forward" else 3)
    print(json.dumps({"bench": a.what, "impl": "pytorch", "torch": torch.__version__, "preset": name,
                      "batch": b, "seq": s, "threads": a.threads, "mlm_gather": a.mlm_gather,
                      "encoder_only": a.encoder_only, "median_ms": t * 1e3, "tokens_per_s": b * s / t,
                      "gflops": flops / t / 1e9, "peak_rss_mb": peak_rss_mb(),
                      "times_ms": [x * 1e3 for x in times]}))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def gemm(a):
    m, n, k = a.m, a.n, a.k
    x = (torch.rand(k, m) * 2 - 1).T if a.trans_a else torch.rand(m, k) * 2 - 1
    w = torch.rand(n, k) * 2 - 1 if a.trans_b else torch.rand(k, n) * 2 - 1
    rhs = w.T if a.trans_b else w
    out = torch.empty(m, n)

    def step():
        t0 = time.perf_counter()
        torch.matmul(x, rhs, out=out)
        return time.perf_counter() - t0

    for _ in range(max(a.warmup, 3)):
        step()
    times = [step() for _ in range(a.iters)]
    t = statistics.median(times)
    print(json.dumps({"bench": "gemm", "impl": "pytorch", "torch": torch.__version__, "m": m, "n": n, "k": k,
                      "trans_a": a.trans_a, "trans_b": a.trans_b, "threads": a.threads, "median_ms": t * 1e3, "tokens_per_s": m / t,
                      "gflops": 2 * m * n * k / t / 1e9, "peak_rss_mb": peak_rss_mb(),
                      "times_ms": [x * 1e3 for x in times]}))


if __name__ == "__main__":
    main()
