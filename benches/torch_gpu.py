"""PyTorch baselines on the GPU for `albert bench ... --device cuda`, run in the same script on the
same card (scripts/gpu-check.sh). Prints one JSON object per line.

    python3 benches/torch_gpu.py ceilings            # copy GB/s and bf16 matmul TFLOP/s of this card
    python3 benches/torch_gpu.py gemm --m 4096 --n 4096 --k 4096 [--dtype bf16|f32] [--trans-b]
    python3 benches/torch_gpu.py attention --batch 32 --heads 12 --seq 512 --head-dim 64
    python3 benches/torch_gpu.py train --preset base --batch 32 --seq 512     # bf16 autocast, eager
    python3 benches/torch_gpu.py forward --preset base --batch 32 --seq 512

Times are CUDA-event medians after warm-up. FLOPs are counted as `albert bench` counts them
(2 per multiply-add; training = 3x the forward with the MLM head at the masked positions).
"""
import argparse
import json
import statistics

import torch

PRESETS = {"base": (12, 768, 12, 3072), "large": (24, 1024, 16, 4096), "tiny": (4, 128, 2, 512)}


def timed(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times), times


def emit(**kw):
    kw["device_name"] = torch.cuda.get_device_name(0)
    kw["torch"] = torch.__version__
    print(json.dumps(kw), flush=True)


def ceilings(args):
    n = 1 << 28  # 1 GiB of f32
    x = torch.empty(n, dtype=torch.float32, device="cuda")
    y = torch.empty_like(x)
    ms, _ = timed(lambda: y.copy_(x), args.iters, args.warmup)
    emit(bench="copy", median_ms=ms, gbytes_per_s=2 * 4 * n / ms / 1e6)
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    ms, _ = timed(lambda: a @ b, args.iters, args.warmup)
    emit(bench="matmul_peak_bf16_8192", median_ms=ms, tflops=2 * 8192**3 / ms / 1e9)


def gemm(args):
    dt = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    torch.backends.cuda.matmul.allow_tf32 = args.dtype == "f32"  # as our default (TF32 for f32)
    a = torch.randn(args.m, args.k, dtype=dt, device="cuda")
    b = torch.randn(args.n, args.k, dtype=dt, device="cuda") if args.trans_b else torch.randn(args.k, args.n, dtype=dt, device="cuda")
    op = (lambda: a @ b.t()) if args.trans_b else (lambda: a @ b)
    ms, _ = timed(op, args.iters, args.warmup)
    emit(bench="gemm", m=args.m, n=args.n, k=args.k, dtype=args.dtype, trans_b=args.trans_b, median_ms=ms,
         tflops=2 * args.m * args.n * args.k / ms / 1e9)


def attention(args):
    import torch.nn.functional as F

    b, h, s, d = args.batch, args.heads, args.seq, args.head_dim
    q, k, v = (torch.randn(b, h, s, d, dtype=torch.bfloat16, device="cuda") for _ in range(3))
    ms, _ = timed(lambda: F.scaled_dot_product_attention(q, k, v), args.iters, args.warmup)
    flops = 4 * b * h * s * s * d
    emit(bench="attention_fwd", batch=b, heads=h, seq=s, head_dim=d, median_ms=ms, tflops=flops / ms / 1e9,
         backend="sdpa")
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    g = torch.randn_like(out)
    ms, _ = timed(lambda: torch.autograd.grad(F.scaled_dot_product_attention(q, k, v), (q, k, v), g), args.iters,
                  args.warmup)
    emit(bench="attention_fwd_bwd", batch=b, heads=h, seq=s, head_dim=d, median_ms=ms, tflops=3.5 * flops / ms / 1e9,
         backend="sdpa")


def forward_flops(c, b, s, scored):
    h, e, i, v, l = c.hidden_size, c.embedding_size, c.intermediate_size, c.vocab_size, c.num_hidden_layers
    return b * s * (l * (8 * h * h + 4 * h * i + 4 * s * h) + 2 * e * h) + b * 2 * h * h + scored * (2 * h * e + 2 * e * v)


def model(args):
    from transformers import AlbertConfig, AlbertForPreTraining

    l, h, n, i = PRESETS[args.preset]
    cfg = AlbertConfig(vocab_size=30000 if args.preset != "tiny" else 8000, embedding_size=128 if args.preset != "tiny" else 64,
                       hidden_size=h, num_hidden_layers=l, num_attention_heads=n, intermediate_size=i,
                       max_position_embeddings=512, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       attn_implementation="sdpa")
    m = AlbertForPreTraining(cfg).cuda()
    b, s = args.batch, args.seq
    g = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.randint(5, cfg.vocab_size, (b, s), device="cuda", generator=g)
    types = (torch.arange(s, device="cuda") >= s // 2).long().expand(b, s)
    labels = torch.where(torch.rand(b, s, device="cuda", generator=g) < 0.15, ids, torch.full_like(ids, -100))
    masked = int((labels != -100).sum())
    sop = torch.arange(b, device="cuda") % 2
    if args.what == "forward":
        m.eval()

        def step():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                m(input_ids=ids, token_type_ids=types)

        flops = forward_flops(cfg, b, s, b * s)
    else:
        m.train()

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = m.albert(input_ids=ids, token_type_ids=types)
                seq = out.last_hidden_state
                rows = (labels.view(-1) != -100).nonzero().squeeze(1)
                logits = m.predictions(seq.reshape(-1, h)[rows])
                loss = torch.nn.functional.cross_entropy(logits.float(), labels.view(-1)[rows])
                loss = loss + torch.nn.functional.cross_entropy(m.sop_classifier(out.pooler_output).float(), sop)
            m.zero_grad(set_to_none=True)
            loss.backward()

        flops = 3 * forward_flops(cfg, b, s, masked)
    ms, times = timed(step, args.iters, args.warmup)
    emit(bench=args.what, preset=args.preset, batch=b, seq=s, precision="bf16-autocast", median_ms=ms,
         tokens_per_s=b * s / ms * 1e3, tflops=flops / ms / 1e9, peak_mem_mb=torch.cuda.max_memory_allocated() / 2**20,
         times_ms=times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ceilings", "gemm", "attention", "forward", "train"])
    ap.add_argument("--m", type=int, default=4096)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--trans-b", action="store_true")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--preset", default="base", choices=sorted(PRESETS))
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    {"ceilings": ceilings, "gemm": gemm, "attention": attention, "forward": model, "train": model}[args.what](args)


if __name__ == "__main__":
    main()
