#!/usr/bin/env python3
"""numpy.matmul (OpenBLAS sgemm) on the shapes of benches/matmul.rs, in float32, 1 and 2 threads.

Needs numpy (and, preferably, threadpoolctl to set the BLAS thread count in-process):

    pip install numpy threadpoolctl
    python3 benches/numpy_matmul.py [--threads 1,2] [--min-time 0.5]

Without threadpoolctl the script re-runs itself once per thread count with OPENBLAS_NUM_THREADS
and OMP_NUM_THREADS set before numpy is imported. Each figure is the median of repeated calls
after warm-up, written into a preallocated output (as the Rust gemm is); GFLOP/s counts
2 FLOPs per multiply-add. Transposed operands are passed as views (`w.T`), as a Linear layer does.
"""

import argparse
import json
import os
import subprocess
import sys
import time

# (name, batch, m, n, k, trans_b): same names and shapes as benches/matmul.rs.
SHAPES = [
    ("1024x768*768x768^T", 1, 1024, 768, 768, True),
    ("1024x768*3072x768^T", 1, 1024, 3072, 768, True),
    ("1024x3072*768x3072^T", 1, 1024, 768, 3072, True),
    ("96x128x64*96x128x64^T", 96, 128, 128, 64, True),
    ("1024x128*768x128^T", 1, 1024, 768, 128, True),
    ("1024x1024*1024x1024", 1, 1024, 1024, 1024, False),
]


def measure(np, min_time):
    """GFLOP/s of the median call for every shape, at the current BLAS thread setting."""
    rng = np.random.default_rng(0)
    out = {}
    for name, batch, m, n, k, trans_b in SHAPES:
        lead = (batch,) if batch > 1 else ()
        a = rng.uniform(-1, 1, lead + (m, k)).astype(np.float32)
        if trans_b:
            w = rng.uniform(-1, 1, lead + (n, k)).astype(np.float32)
            b = np.swapaxes(w, -1, -2)  # a view, like x @ W.T
        else:
            b = rng.uniform(-1, 1, lead + (k, n)).astype(np.float32)
        c = np.empty(lead + (m, n), np.float32)
        for _ in range(3):
            np.matmul(a, b, out=c)
        times = []
        start = time.perf_counter()
        while len(times) < 10 or (time.perf_counter() - start < min_time and len(times) < 500):
            t = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - t)
        times.sort()
        out[name] = 2.0 * batch * m * n * k / times[len(times) // 2] / 1e9
    return out


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i.get('internal_api')} {i.get('version')} {i.get('threading_layer', '')} "
        f"arch={i.get('architecture')} num_threads={i.get('num_threads')}"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated BLAS thread counts")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds of timed calls per shape")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child is not None:  # re-executed with the thread count fixed in the environment
        import numpy as np

        print(json.dumps(measure(np, args.min_time)))
        return

    counts = [int(t) for t in args.threads.split(",")]
    results = {}
    try:
        from threadpoolctl import threadpool_limits

        import numpy as np

        for t in counts:
            with threadpool_limits(limits=t, user_api="blas"):
                results[t] = measure(np, args.min_time)
    except ImportError:
        for t in counts:
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t))
            cmd = [sys.executable, __file__, "--child", str(t), "--min-time", str(args.min_time)]
            line = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            results[t] = json.loads(line.strip().splitlines()[-1])
        import numpy as np

    print(f"numpy {np.__version__}; BLAS: {blas_info()}")
    print("GFLOP/s (median), float32")
    header = f"| {'shape':24} | " + " | ".join(f"{t} thr" for t in counts) + " |"
    print(header)
    print("|" + "---|" * (len(counts) + 1))
    for name, *_ in SHAPES:
        print(f"| {name:24} | " + " | ".join(f"{results[t][name]:6.1f}" for t in counts) + " |")


if __name__ == "__main__":
    main()
