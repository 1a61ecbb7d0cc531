#!/usr/bin/env python3
"""Reference values for ALBERT's LAMB optimizer, gradient clipping and learning-rate schedule.

How to run (from the repository root; needs only numpy):

    python3 tests/reference/gen_lamb.py

It writes tests/fixtures/optim/lamb.json, read by albert/tests/optim.rs.  The output is
deterministic (seeded numpy Generator, no threads); running it twice gives identical bytes.

This is an independent float64 numpy transcription of the official TF pretraining recipe
(google-research/albert `optimization.py` create_optimizer, `lamb_optimizer.py` apply_gradients),
written from its description, not from any Rust code:

  schedule (tf.train.polynomial_decay with end_learning_rate 0, cycle False, then linear warmup):
      decayed = peak * (1 - min(step, T) / T) ** power        # measured from step 0, not from W
      lr      = peak * step / W   if step < W   else decayed

  clipping (tf.clip_by_global_norm, clip_norm 1.0), over all gradients together:
      norm = sqrt(sum over every tensor of sum(g**2));  g *= clip / max(norm, clip)

  LAMB, per tensor (no bias correction):
      m = b1 * m + (1 - b1) * g
      v = b2 * v + (1 - b2) * g**2
      update = m / (sqrt(v) + eps)
      if no pattern of EXCLUDE occurs in the name: update += wd * param
      ratio = 1
      if no pattern of EXCLUDE occurs in the name:
          w = ||param||_2 (whole tensor), u = ||update||_2
          ratio = w / u if w > 0 and u > 0 else 1
      param -= ratio * lr * update

The tensors carry Hugging Face ALBERT names: an embedding table and an attention kernel (weight
decay and trust ratio), an embedding LayerNorm weight ("LayerNorm"), a full-layer LayerNorm weight
("layer_norm", HF's `full_layer_layer_norm`) and an attention bias ("bias"), which get neither.
Initial values and gradients are drawn in float32 (so the Rust side can hold them exactly) and every
computation here is float64.  Three updates at global steps 1, 2, 3 of a short schedule (peak 0.05,
warmup 2, total 10); the gradients are scaled so that steps 1 and 3 are clipped and step 2 is not.

The JSON also holds schedule values for the paper's recipe (0.00176 peak, 3125 warmup, 125000
steps) and a power-2 variant at selected steps, and `generator_sha256`, the sha256 of this file: a
Rust test fails with "re-run tests/reference/gen_lamb.py" when the file changes.
"""

import hashlib
import json
import os
import platform

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "optim", "lamb.json")

BETA1, BETA2, EPS, WEIGHT_DECAY, CLIP = 0.9, 0.999, 1e-6, 0.01, 1.0
EXCLUDE = ["LayerNorm", "layer_norm", "bias"]
SCHEDULE = {"peak_lr": 0.05, "warmup_steps": 2, "total_steps": 10, "power": 1.0}
GLOBAL_STEPS = [1, 2, 3]
GRAD_SCALE = {1: 1.0, 2: 0.02, 3: 0.5}  # global norm about 8, 0.17, 4: clipped, not, clipped

LAYER = "albert.encoder.albert_layer_groups.0.albert_layers.0."
# (name, shape, init): init is (mean, std) of the float32 normal draw
PARAMS = [
    ("albert.embeddings.word_embeddings.weight", (7, 4), (0.0, 0.2)),
    ("albert.embeddings.LayerNorm.weight", (4,), (1.0, 0.1)),
    (LAYER + "attention.query.weight", (5, 4), (0.0, 0.2)),
    (LAYER + "attention.query.bias", (5,), (0.0, 0.1)),
    (LAYER + "full_layer_layer_norm.weight", (5,), (1.0, 0.1)),
]


def lr_at(step, peak_lr, warmup_steps, total_steps, power):
    """Linear warmup from 0, then polynomial decay to 0 computed from step 0 (official code)."""
    decayed = peak_lr * (1.0 - min(step, total_steps) / total_steps) ** power
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return decayed


def excluded(name):
    return any(p in name for p in EXCLUDE)


def f32(a):
    """float32 draw, returned as float64 (exactly representable in float32)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def to_list(a):
    return [float(x) for x in np.asarray(a, dtype=np.float64).reshape(-1)]


def main():
    rng = np.random.default_rng(20240917)
    params = {}
    for name, shape, (mean, std) in PARAMS:
        params[name] = f32(mean + std * rng.standard_normal(shape).astype(np.float32))
    initial = {name: p.copy() for name, p in params.items()}
    m = {name: np.zeros_like(p) for name, p in params.items()}
    v = {name: np.zeros_like(p) for name, p in params.items()}

    steps = []
    for gs in GLOBAL_STEPS:
        grads = {
            name: f32(np.float32(GRAD_SCALE[gs]) * rng.standard_normal(p.shape).astype(np.float32))
            for name, p in params.items()
        }
        norm = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
        clipped = {name: g * (CLIP / max(norm, CLIP)) for name, g in grads.items()}
        lr = lr_at(gs, **SCHEDULE)
        after = {}
        for name, p in params.items():
            g = clipped[name]
            m[name] = BETA1 * m[name] + (1.0 - BETA1) * g
            v[name] = BETA2 * v[name] + (1.0 - BETA2) * g * g
            update = m[name] / (np.sqrt(v[name]) + EPS)
            ratio = 1.0
            if not excluded(name):
                update = update + WEIGHT_DECAY * p
                w_norm = float(np.linalg.norm(p.reshape(-1)))
                u_norm = float(np.linalg.norm(update.reshape(-1)))
                ratio = w_norm / u_norm if (w_norm > 0 and u_norm > 0) else 1.0
            params[name] = p - ratio * lr * update
            after[name] = {
                "value": to_list(params[name]),
                "m": to_list(m[name]),
                "v": to_list(v[name]),
                "ratio": ratio,
            }
        steps.append(
            {
                "global_step": gs,
                "lr": lr,
                "grad_norm_before_clip": norm,
                "clipped": norm > CLIP,
                "grads": {name: to_list(g) for name, g in grads.items()},
                "after": after,
            }
        )

    schedule_points = []
    for sched, points in [
        (
            {"peak_lr": 0.00176, "warmup_steps": 3125, "total_steps": 125000, "power": 1.0},
            [0, 1, 1562, 3124, 3125, 3126, 62500, 124999, 125000, 200000],
        ),
        (
            {"peak_lr": 1e-3, "warmup_steps": 10, "total_steps": 100, "power": 2.0},
            [0, 5, 9, 10, 50, 99, 100, 101],
        ),
        ({"peak_lr": 2e-3, "warmup_steps": 0, "total_steps": 100, "power": 1.0}, [0, 1, 50, 100]),
    ]:
        for s in points:
            schedule_points.append(dict(sched, step=s, lr=lr_at(s, **sched)))

    with open(os.path.abspath(__file__), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    doc = {
        "generator": "tests/reference/gen_lamb.py",
        "generator_sha256": sha,
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
        "hyper": {
            "beta1": BETA1,
            "beta2": BETA2,
            "eps": EPS,
            "weight_decay": WEIGHT_DECAY,
            "clip_norm": CLIP,
            "exclude": EXCLUDE,
        },
        "schedule": SCHEDULE,
        "params": [
            {"name": name, "shape": list(shape), "excluded": excluded(name), "value": to_list(initial[name])}
            for name, shape, _ in PARAMS
        ],
        "steps": steps,
        "schedule_points": schedule_points,
    }
    assert [s["clipped"] for s in steps] == [True, False, True], [s["grad_norm_before_clip"] for s in steps]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}; norms {[round(s['grad_norm_before_clip'], 4) for s in steps]}")


if __name__ == "__main__":
    main()
