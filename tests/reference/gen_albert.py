#!/usr/bin/env python3
"""Generate PyTorch / Hugging Face reference fixtures for tiny ALBERT models.

How to run (from the repository root):

    pip install torch transformers safetensors numpy
    python3 tests/reference/gen_albert.py

It downloads nothing: every model is built from a `transformers.AlbertConfig` with a seeded random
init, float32, eager attention, every dropout probability 0 (hidden, attention and
classifier_dropout_prob), so train and eval mode give the same numbers.  Single-threaded torch.

What it writes, for each config NAME in CONFIGS, into tests/fixtures/albert/NAME/:

  config.json        written by `model.save_pretrained` (HF's own config writer), unedited.
  model.safetensors  the AlbertForPreTraining state dict, f32, HF names.  The tied
                     `predictions.decoder.weight` / `predictions.decoder.bias` are left out except
                     for the config with keep_decoder=True, where they are stored as clones.
  io.safetensors     inputs (int64): input_ids, attention_mask, token_type_ids, mlm_labels [B,S],
                     sop_labels [B]; outputs (f32) of one forward in train mode:
                     last_hidden_state, pooler_output, prediction_logits, sop_logits,
                     hidden_states.<i> (every entry HF returns with output_hidden_states=True:
                     1 + num_hidden_layers * inner_group_num of them in transformers 5.x),
                     embedding_output (embedding LayerNorm output, width E), loss, loss_mlm,
                     loss_sop (0-dim, shape []), and grad.<param name> for every parameter
                     (model.named_parameters(), which lists each tied parameter once) after
                     backward of the total loss.
  meta.json          versions, this file's sha256, config name, B, S, and the conventions above
                     spelled out (meta.json["conventions"]).

and, for the first config only (the trajectory config), into the same directory:

  trajectory.safetensors  step<k>.{input_ids,attention_mask,token_type_ids,mlm_labels,sop_labels}
                          for k in 0..9, losses / losses_mlm / losses_sop [10] f32 (the loss of each
                          step BEFORE its update), and final.<param name>: every parameter after the
                          10th AdamW update.
  meta.json["trajectory"] the optimizer hyper-parameters and the 10 losses.

Checks (asserts): every file loads back with safetensors.torch.load_file; reloading the directory
with AlbertForPreTraining.from_pretrained reproduces every output and gradient bit for bit; train
and eval mode agree bit for bit; our cross_entropy losses equal HF's `loss` bit for bit; the
model.safetensors that HF's own save_pretrained writes holds the same tensors as ours.

After editing this file, re-run it: a Rust test compares meta.json["generator_sha256"] with the
sha256 of this file and fails with "re-run tests/reference/gen_albert.py".
"""

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile

import numpy as np
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
import transformers
from transformers import AlbertConfig, AlbertForPreTraining

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT_ROOT = os.path.join(REPO, "tests", "fixtures", "albert")

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4  # ALBERT's special ids
FIRST_ORDINARY_ID = 5
INITIALIZER_RANGE = 0.2  # larger than HF's 0.02 so attention is far from uniform in tiny models
LN_WEIGHT_JITTER = 0.1   # LayerNorm weights = 1 + 0.1 * N(0,1)
BIAS_STD = 0.1           # every bias (incl. LayerNorm biases, predictions.bias) = 0.1 * N(0,1)
TIED_KEYS = ("predictions.decoder.weight", "predictions.decoder.bias")

ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
TRAJECTORY_STEPS = 10

# name -> (config kwargs, B, row lengths (S = max), keep_decoder, seed)
CONFIGS = {
    "e_ne_h_gelu_new": dict(
        config=dict(vocab_size=101, embedding_size=24, hidden_size=36, num_attention_heads=3,
                    intermediate_size=52, num_hidden_layers=3, num_hidden_groups=1,
                    inner_group_num=1, hidden_act="gelu_new", max_position_embeddings=40,
                    type_vocab_size=2),
        lengths=[13, 9, 6], keep_decoder=False, seed=1001, trajectory=True),
    "groups_inner_gelu_erf": dict(
        config=dict(vocab_size=83, embedding_size=20, hidden_size=30, num_attention_heads=5,
                    intermediate_size=46, num_hidden_layers=4, num_hidden_groups=2,
                    inner_group_num=2, hidden_act="gelu", max_position_embeddings=40,
                    type_vocab_size=2),
        lengths=[11, 7], keep_decoder=False, seed=2002, trajectory=False),
    "relu_e_eq_h_tied_decoder": dict(
        config=dict(vocab_size=67, embedding_size=28, hidden_size=28, num_attention_heads=4,
                    intermediate_size=40, num_hidden_layers=2, num_hidden_groups=1,
                    inner_group_num=1, hidden_act="relu", max_position_embeddings=40,
                    type_vocab_size=2, layer_norm_eps=1e-5),
        lengths=[9, 5], keep_decoder=True, seed=3003, trajectory=False),
}


def generator_sha256():
    with open(os.path.abspath(__file__), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def versions():
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


def make_config(kwargs):
    return AlbertConfig(
        **kwargs,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout_prob=0.0,
        initializer_range=INITIALIZER_RANGE,
        attn_implementation="eager",
    )


def build_model(config, seed):
    """HF's own init (normal(0, initializer_range) weights, pad row of the word table zeroed), then
    LayerNorm weights and all biases randomised so that no parameter is a trivial 0 or 1."""
    torch.manual_seed(seed)
    model = AlbertForPreTraining(config).float()
    assert model.config._attn_implementation == "eager"
    assert model.predictions.decoder.weight is model.albert.embeddings.word_embeddings.weight
    assert model.predictions.decoder.bias is model.predictions.bias
    g = torch.Generator().manual_seed(seed + 17)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                if name.endswith(".weight"):
                    p.copy_(1.0 + LN_WEIGHT_JITTER * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(BIAS_STD * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(BIAS_STD * torch.randn(p.shape, generator=g))
    model.train()
    return model


def make_batch(rng, vocab, lengths, seq, both_sop_classes=True):
    """Sentence-pair batch with right padding: [CLS] a.. [SEP] b.. [SEP] PAD.., segment 0 up to and
    including the first [SEP], 1 after it, 0 on padding. ~15% of the ordinary (non-special,
    non-pad) positions, at least one per row, get an MLM label (the original id) and their input id
    becomes [MASK]; all other labels are -100. sop_labels are random 0/1, with both classes present
    when both_sop_classes."""
    B = len(lengths)
    ids = np.full((B, seq), PAD_ID, dtype=np.int64)
    am = np.zeros((B, seq), dtype=np.int64)
    tt = np.zeros((B, seq), dtype=np.int64)
    labels = np.full((B, seq), -100, dtype=np.int64)
    for b, n in enumerate(lengths):
        assert 5 <= n <= seq
        body = n - 3  # CLS + 2 SEP
        len_a = int(rng.randint(1, body))  # 1..body-1, so both segments are non-empty
        len_b = body - len_a
        row = [CLS_ID] + list(rng.randint(FIRST_ORDINARY_ID, vocab, size=len_a)) + [SEP_ID] \
            + list(rng.randint(FIRST_ORDINARY_ID, vocab, size=len_b)) + [SEP_ID]
        ids[b, :n] = row
        am[b, :n] = 1
        tt[b, len_a + 2:n] = 1
        ordinary = [i for i in range(n) if ids[b, i] >= FIRST_ORDINARY_ID]
        k = max(1, int(round(0.15 * n)))
        chosen = rng.choice(ordinary, size=k, replace=False)
        for i in chosen:
            labels[b, i] = ids[b, i]
            ids[b, i] = MASK_ID
    sop = rng.randint(0, 2, size=B).astype(np.int64)
    if both_sop_classes and B >= 2 and sop.min() == sop.max():
        sop[int(rng.randint(0, B))] ^= 1  # make both SOP classes appear
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(am),
        "token_type_ids": torch.from_numpy(tt),
        "mlm_labels": torch.from_numpy(labels),
        "sop_labels": torch.from_numpy(sop),
    }


def run(model, batch):
    """One forward (current mode) + backward of the total loss. Returns a dict of f32 tensors."""
    captured = {}
    hook = model.albert.embeddings.register_forward_hook(
        lambda mod, args, out: captured.__setitem__("embedding_output", out.detach().clone()))
    model.zero_grad(set_to_none=True)
    try:
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
            labels=batch["mlm_labels"],
            sentence_order_label=batch["sop_labels"],
            output_hidden_states=True,
            return_dict=True,
        )
    finally:
        hook.remove()
    V = model.config.vocab_size
    # Exactly AlbertForPreTraining's loss: CrossEntropyLoss() = mean over non-ignored (-100) labels.
    loss_mlm = F.cross_entropy(out.prediction_logits.view(-1, V), batch["mlm_labels"].view(-1))
    loss_sop = F.cross_entropy(out.sop_logits.view(-1, 2), batch["sop_labels"].view(-1))
    loss = loss_mlm + loss_sop
    assert torch.equal(loss, out.loss), (loss, out.loss)
    out.loss.backward()
    res = {
        "last_hidden_state": out.hidden_states[-1],
        "prediction_logits": out.prediction_logits,
        "sop_logits": out.sop_logits,
        "embedding_output": captured["embedding_output"],
        "loss": out.loss.reshape(()),
        "loss_mlm": loss_mlm.reshape(()),
        "loss_sop": loss_sop.reshape(()),
    }
    for i, h in enumerate(out.hidden_states):
        res[f"hidden_states.{i}"] = h
    # pooler_output is not part of AlbertForPreTrainingOutput; recompute it the way AlbertModel does
    # from the captured last hidden state, and check it against the SOP logits it feeds.
    pooled = model.albert.pooler_activation(model.albert.pooler(out.hidden_states[-1][:, 0]))
    assert torch.equal(model.sop_classifier.classifier(pooled), out.sop_logits)
    res["pooler_output"] = pooled
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        res[f"grad.{name}"] = p.grad
    return {k: v.detach().float().contiguous().clone() for k, v in res.items()}


def assert_same(a, b, what):
    assert a.keys() == b.keys(), (what, sorted(set(a) ^ set(b)))
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, (what, k)
        assert torch.equal(a[k], b[k]), (what, k, (a[k] - b[k]).abs().max())


def state_dict_for_file(model, keep_decoder):
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if not keep_decoder:
        for k in TIED_KEYS:
            del sd[k]
    for v in sd.values():
        assert v.dtype == torch.float32
    return sd


def save_config_json(model, out_dir):
    """config.json exactly as HF's save_pretrained writes it; also cross-checks HF's own
    model.safetensors against ours."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        shutil.copyfile(os.path.join(tmp, "config.json"), os.path.join(out_dir, "config.json"))
        hf_sd = safetensors.torch.load_file(os.path.join(tmp, "model.safetensors"))
    ours = state_dict_for_file(model, keep_decoder=False)
    assert hf_sd.keys() == ours.keys(), sorted(set(hf_sd) ^ set(ours))
    for k in ours:
        assert torch.equal(hf_sd[k], ours[k]), k


def reload(out_dir):
    m = AlbertForPreTraining.from_pretrained(out_dir, attn_implementation="eager", dtype=torch.float32)
    assert m.config._attn_implementation == "eager"
    assert m.predictions.decoder.weight is m.albert.embeddings.word_embeddings.weight
    m.train()
    return m


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def num_hidden_states(cfg):
    return 1 + cfg.num_hidden_layers * cfg.inner_group_num


def conventions(cfg, keep_decoder):
    n_hs = num_hidden_states(cfg)
    return {
        "dtype": "float32 for every float tensor; int64 for input_ids, attention_mask, token_type_ids, mlm_labels, sop_labels",
        "scalar_shape": "[] (0-dim) for loss, loss_mlm, loss_sop",
        "mode": "forward in model.train() with every dropout probability 0 (asserted bit-identical to eval)",
        "attn_implementation": "eager",
        "attention_mask_inside_hf": (
            "transformers.masking_utils.create_bidirectional_mask -> eager_mask: float [B,1,S,S] = "
            "torch.where(mask_bool, 0.0, torch.finfo(float32).min = -3.4028234663852886e38) in the embedding "
            "output dtype, added to (q @ k^T) * head_dim**-0.5 before softmax; padding masks keys only "
            "(padded query rows still attend to the real tokens). Returns None (no add) when attention_mask "
            "has no zeros."),
        "padding": "right padding, input_ids = 0 (pad_token_id) and token_type_ids = 0 on padded positions; "
                   "outputs at padded positions are stored too and must match",
        "mlm_labels": "-100 = ignored; labelled positions hold the original id and input_ids there is 4 ([MASK])",
        "sop_labels": "0 = original order, 1 = swapped (random here)",
        "losses": "loss_mlm = F.cross_entropy(prediction_logits.view(-1,V), mlm_labels.view(-1)) (mean over "
                  "labels != -100); loss_sop = F.cross_entropy(sop_logits, sop_labels) (mean); "
                  "loss = loss_mlm + loss_sop (== HF's output .loss bit for bit)",
        "hidden_states": (
            f"{n_hs} entries hidden_states.0..{n_hs - 1}. transformers 5.x records them with a forward hook "
            "on every AlbertLayer call (_can_record_outputs = {'hidden_states': AlbertLayer}): "
            "hidden_states.0 = input of the first AlbertLayer = output of embedding_hidden_mapping_in, "
            "hidden_states.k (k>=1) = output of the k-th AlbertLayer call. So there are "
            "1 + num_hidden_layers * inner_group_num entries (not num_hidden_layers + 1 as in transformers 4.x, "
            "which recorded once per layer-group call). For loop step i (0-based) of the num_hidden_layers loop "
            "and inner layer j, the output is hidden_states.(i*inner_group_num + j + 1); the end of loop step i "
            "is hidden_states.((i+1)*inner_group_num). The last entry equals last_hidden_state."),
        "embedding_output": "output of albert.embeddings (LayerNorm(word + token_type + position) at width E, "
                            "dropout p=0), captured with a forward hook",
        "pooler_output": "tanh(albert.pooler(last_hidden_state[:, 0])), recomputed from the captured last hidden "
                         "state exactly as AlbertModel does (AlbertForPreTrainingOutput does not return it)",
        "grads": (
            "grad.<name> for every name in model.named_parameters(): tied parameters are listed once, so "
            "grad.albert.embeddings.word_embeddings.weight holds the TOTAL gradient of the shared "
            "[V,E] table (embedding lookup + MLM decoder use) and grad.predictions.bias the total gradient of "
            "the shared bias (= decoder bias). There are no grad.predictions.decoder.* entries. "
            "word_embeddings has padding_idx=0: PyTorch's embedding backward adds nothing to row 0 from "
            "the lookup of pad tokens, so row 0's gradient comes only from the decoder use. "
            "grad.*.attention.key.bias is exactly zero in exact arithmetic (adding q.b_k to every score of a "
            "softmax row changes nothing); the stored values are float32 rounding noise (~1e-8), so compare "
            "them with an absolute bound, not relative to their own max|ref|."),
        "tied_decoder_in_model_safetensors": keep_decoder,
        "model_safetensors": (
            "AlbertForPreTraining state_dict, f32, HF names. "
            + ("predictions.decoder.weight / predictions.decoder.bias are PRESENT (clones equal to "
               "albert.embeddings.word_embeddings.weight / predictions.bias)." if keep_decoder else
               "predictions.decoder.weight / predictions.decoder.bias are ABSENT (tied to "
               "albert.embeddings.word_embeddings.weight / predictions.bias), as HF's save_pretrained writes it.")
            + " No position_ids / token_type_ids buffers (non-persistent)."),
        "init": (
            f"torch.manual_seed(seed); AlbertForPreTraining(config) (HF init: Linear/Embedding weights "
            f"normal(0, initializer_range={INITIALIZER_RANGE}), word_embeddings row 0 zeroed); then with "
            f"torch.Generator().manual_seed(seed+17), in named_parameters() order: LayerNorm weights = "
            f"1 + {LN_WEIGHT_JITTER}*randn, every bias (LayerNorm biases and predictions.bias included) = "
            f"{BIAS_STD}*randn"),
        "threads": "torch.set_num_threads(1)",
    }


def gen_one(name, spec, sha, vers):
    out_dir = os.path.join(OUT_ROOT, name)
    os.makedirs(out_dir, exist_ok=True)
    cfg = make_config(spec["config"])
    model = build_model(cfg, spec["seed"])
    lengths = spec["lengths"]
    B, S = len(lengths), max(lengths)
    rng = np.random.RandomState(spec["seed"])
    batch = make_batch(rng, cfg.vocab_size, lengths, S)

    # --- reference forward/backward (train mode), and eval must agree bit for bit
    ref = run(model, batch)
    model.eval()
    ref_eval = run(model, batch)
    model.train()
    assert_same(ref, ref_eval, f"{name}: train vs eval")
    assert len([k for k in ref if k.startswith("hidden_states.")]) == num_hidden_states(cfg)
    assert torch.equal(ref[f"hidden_states.{num_hidden_states(cfg) - 1}"], ref["last_hidden_state"])

    # --- write files
    save_config_json(model, out_dir)
    sd = state_dict_for_file(model, spec["keep_decoder"])
    safetensors.torch.save_file(sd, os.path.join(out_dir, "model.safetensors"))
    io = dict(batch)
    io.update(ref)
    safetensors.torch.save_file(io, os.path.join(out_dir, "io.safetensors"))

    # --- load back and check bit-exactness through HF's own loader
    assert_same(safetensors.torch.load_file(os.path.join(out_dir, "model.safetensors")), sd, f"{name}: model file")
    io_back = safetensors.torch.load_file(os.path.join(out_dir, "io.safetensors"))
    assert_same(io_back, io, f"{name}: io file")
    fresh = reload(out_dir)
    fresh_sd = state_dict_for_file(fresh, spec["keep_decoder"])
    assert_same(fresh_sd, sd, f"{name}: reloaded params")
    back_batch = {k: io_back[k] for k in batch}
    assert_same(run(fresh, back_batch), ref, f"{name}: reloaded outputs")

    meta = {
        "name": name,
        "generator": "tests/reference/gen_albert.py",
        "generator_sha256": sha,
        "versions": vers,
        "B": B,
        "S": S,
        "row_lengths": lengths,
        "seed": spec["seed"],
        "num_hidden_states": num_hidden_states(cfg),
        "hidden_states_index_after_layer_loop_step": [
            (i + 1) * cfg.inner_group_num for i in range(cfg.num_hidden_layers)],
        "conventions": conventions(cfg, spec["keep_decoder"]),
        "io_keys": sorted(io.keys()),
        "model_keys": sorted(sd.keys()),
        "summary": {
            "loss": ref["loss"].item(),
            "loss_mlm": ref["loss_mlm"].item(),
            "loss_sop": ref["loss_sop"].item(),
            "max_abs": {k: ref[k].abs().max().item() for k in sorted(ref)},
        },
    }

    if spec["trajectory"]:
        meta["trajectory"] = gen_trajectory(out_dir, cfg, spec, B, S)

    write_json(os.path.join(out_dir, "meta.json"), meta)
    return out_dir


def gen_trajectory(out_dir, cfg, spec, B, S):
    model = reload(out_dir)  # same init as model.safetensors
    opt = torch.optim.AdamW(model.parameters(), **ADAMW, amsgrad=False, maximize=False, foreach=False,
                            fused=False, capturable=False, differentiable=False)
    rng = np.random.RandomState(spec["seed"] + 500)
    tensors, losses, losses_mlm, losses_sop = {}, [], [], []
    seen = set()
    for k in range(TRAJECTORY_STEPS):
        # Row 0 full length, the others random lengths in [6, S]; the last step has no padding at
        # all (HF then passes no mask to the attention: create_bidirectional_mask returns None).
        if k == TRAJECTORY_STEPS - 1:
            lengths = [S] * B
        else:
            lengths = [S] + [int(rng.randint(6, S + 1)) for _ in range(B - 1)]
        batch = make_batch(rng, cfg.vocab_size, lengths, S, both_sop_classes=False)
        key = batch["input_ids"].numpy().tobytes()
        assert key not in seen
        seen.add(key)
        for f, v in batch.items():
            tensors[f"step{k}.{f}"] = v
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"], labels=batch["mlm_labels"],
                    sentence_order_label=batch["sop_labels"], return_dict=True)
        V = cfg.vocab_size
        l_mlm = F.cross_entropy(out.prediction_logits.view(-1, V), batch["mlm_labels"].view(-1))
        l_sop = F.cross_entropy(out.sop_logits.view(-1, 2), batch["sop_labels"].view(-1))
        assert torch.equal(l_mlm + l_sop, out.loss)
        losses.append(out.loss.item())
        losses_mlm.append(l_mlm.item())
        losses_sop.append(l_sop.item())
        out.loss.backward()
        opt.step()
    tensors["losses"] = torch.tensor(losses, dtype=torch.float32)
    tensors["losses_mlm"] = torch.tensor(losses_mlm, dtype=torch.float32)
    tensors["losses_sop"] = torch.tensor(losses_sop, dtype=torch.float32)
    for name, p in model.named_parameters():
        tensors[f"final.{name}"] = p.detach().clone().contiguous()
    path = os.path.join(out_dir, "trajectory.safetensors")
    safetensors.torch.save_file(tensors, path)
    assert_same(safetensors.torch.load_file(path), tensors, "trajectory file")
    return {
        "file": "trajectory.safetensors",
        "steps": TRAJECTORY_STEPS,
        "init": "model.safetensors of this directory (loaded with AlbertForPreTraining.from_pretrained)",
        "mode": "model.train(), dropout probabilities all 0",
        "optimizer": {
            "class": "torch.optim.AdamW",
            "params": "model.parameters() (every parameter, tied ones once; weight decay on all of them, "
                      "LayerNorm and biases included)",
            "lr": ADAMW["lr"],
            "betas": list(ADAMW["betas"]),
            "eps": ADAMW["eps"],
            "weight_decay": ADAMW["weight_decay"],
            "amsgrad": False,
            "maximize": False,
            "foreach": False,
            "fused": False,
            "schedule": "constant lr, no warmup, no gradient clipping",
            "update": ("t = step (1-based); p *= 1 - lr*wd; m = lerp(m, g, 1-beta1); "
                       "v = v*beta2 + (1-beta2)*g*g; denom = sqrt(v)/sqrt(1-beta2^t) + eps; "
                       "p -= (lr/(1-beta1^t)) * m/denom; m, v start at 0"),
        },
        "per_step": "opt.zero_grad(set_to_none=True); loss = forward(step<k> batch).loss; record; "
                    "loss.backward(); opt.step()",
        "loss_recorded": "total loss (MLM mean + SOP mean) of each step BEFORE that step's update",
        "losses": losses,
        "losses_mlm": losses_mlm,
        "losses_sop": losses_sop,
        "losses_note": "json floats are the float32 values widened to double (exact); "
                       "trajectory.safetensors 'losses' [10] f32 holds the same values",
        "batch_fields": "step<k>.input_ids, step<k>.attention_mask, step<k>.token_type_ids, step<k>.mlm_labels "
                        "(int64 [B,S]), step<k>.sop_labels (int64 [B]), k = 0..9; same conventions as io.safetensors",
        "final_params": "final.<param name>: every parameter (named_parameters()) after the 10th update",
    }


def main():
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    sha = generator_sha256()
    vers = versions()
    os.makedirs(OUT_ROOT, exist_ok=True)
    for name, spec in CONFIGS.items():
        d = gen_one(name, spec, sha, vers)
        files = sorted(os.listdir(d))
        print(f"{name}: " + ", ".join(f"{f} ({os.path.getsize(os.path.join(d, f))} B)" for f in files))
    print(f"generator sha256 {sha}")


if __name__ == "__main__":
    sys.exit(main())
