#!/usr/bin/env python3
"""Checks that transformers loads a model directory written by our engine with the class its
config names (AlbertForSequenceClassification after `albert finetune`, AlbertForTokenClassification,
AlbertForQuestionAnswering, AlbertForPreTraining), with no missing or unexpected weights, and that
its logits equal `albert forward`'s on random ids.

    pip install torch transformers safetensors numpy
    python3 scripts/check_hf_heads.py runs/finetune [--albert target/release/albert]
    python3 scripts/check_hf_heads.py random:AlbertForTokenClassification   # the other direction:
    python3 scripts/check_hf_heads.py random:AlbertForQuestionAnswering     # a random transformers model
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file, save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--albert", default="target/release/albert")
    a = ap.parse_args()
    keep = None
    if a.model.startswith("random:"):
        torch.manual_seed(0)
        cfg = transformers.AlbertConfig(vocab_size=97, embedding_size=16, hidden_size=32, num_hidden_layers=3,
                                        num_attention_heads=4, intermediate_size=48,
                                        max_position_embeddings=32)
        # question answering needs exactly 2 outputs (start, end); the classifiers get 5 labels
        cfg.num_labels = 2 if a.model.endswith("QuestionAnswering") else 5
        keep = tempfile.TemporaryDirectory()
        getattr(transformers, a.model[len("random:"):])(cfg).save_pretrained(keep.name)
        a.model = keep.name
    config = json.load(open(os.path.join(a.model, "config.json")))
    arch = (config.get("architectures") or ["AlbertForPreTraining"])[0]
    cls = getattr(transformers, arch)
    model, info = cls.from_pretrained(a.model, output_loading_info=True)
    model.eval()
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        sys.exit(f"{arch}: loading problems: {bad}")
    rng = np.random.default_rng(0)
    ids = rng.integers(5, config["vocab_size"], size=(2, 11)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({"input_ids": ids, "attention_mask": mask}, inp)
        subprocess.run([a.albert, "forward", "--model", a.model, "--inputs", inp, "--output", out], check=True)
        ours = load_file(out)
    with torch.no_grad():
        theirs = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    worst = 0.0
    for name in ("logits", "start_logits", "end_logits", "prediction_logits", "sop_logits"):
        t = getattr(theirs, name, None)
        if t is None or name not in ours:
            continue
        t = t.numpy()
        if name in ("start_logits", "end_logits"):
            keep = mask.astype(bool)  # transformers leaves padded positions as they are, so do we
            diff = np.abs(t[keep] - ours[name][keep]).max()
        else:
            diff = np.abs(t - ours[name]).max()
        print(f"{arch} {name} {list(t.shape)}: max |transformers - ours| = {diff:.2e}")
        worst = max(worst, diff / (1e-6 + np.abs(t).max()))
    if worst > 1e-4:
        sys.exit(f"mismatch: relative difference {worst:.2e}")
    print(f"ok: transformers {transformers.__version__} loads {a.model} as {arch} and agrees with our engine")


if __name__ == "__main__":
    main()
