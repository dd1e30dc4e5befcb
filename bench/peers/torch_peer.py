#!/usr/bin/python3
"""Plain PyTorch eager forwards (what a user of HF transformers runs), the peers in throughput comparisons.
Dispatches on config.json's model_type. Debian's python3-torch: run with /usr/bin/python3.
  torch_peer.py --check MODEL_DIR     # every tensor of MODEL_DIR/golden.safetensors; exit 1 if any max abs error > 1e-4
  torch_peer.py --bench CONFIG_DIR --batch 4 --seq 512 --layers 24 --reps 3 [--bf16] [--threads N]
                                      # random weights of the config's shapes; prints one JSON line with tokens_per_s
--layers is the number of blocks run (it may exceed the config's; the final norm runs only at the config's count)."""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decoder  # noqa: E402
import gemma2  # noqa: E402
import gpt2  # noqa: E402
import safetensors_io  # noqa: E402

ARCHS = {"llama": decoder, "mistral": decoder, "qwen2": decoder, "qwen3": decoder, "gemma2": gemma2, "gpt2": gpt2}
TOLERANCE = 1e-4
# Checkpoint tensors the forward legitimately never reads: the output head (the forward stops at the final norm).
NOT_READ = {"lm_head.weight"}


def load_config(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    mt = cfg.get("model_type")
    if mt not in ARCHS:
        sys.exit(f"torch_peer: model_type {mt!r} not supported (have: {', '.join(sorted(ARCHS))})")
    return cfg, ARCHS[mt]


def n_layers_of(cfg):
    return cfg.get("num_hidden_layers", cfg.get("n_layer"))


def check(model_dir):
    cfg, arch = load_config(model_dir)
    w, _ = safetensors_io.read(os.path.join(model_dir, "model.safetensors"))
    w = {k: v.float() for k, v in w.items()}
    # The weights --bench makes up must be exactly the checkpoint's (names and shapes), so the bench is fair.
    want = arch.param_shapes(cfg, n_layers_of(cfg))
    have = {k: list(v.shape) for k, v in w.items() if k not in NOT_READ}
    if want != have:
        for k in sorted(set(want) | set(have)):
            if want.get(k) != have.get(k):
                print(f"weight mismatch {k}: expected {want.get(k)}, checkpoint {have.get(k)}")
        print(f"{cfg['model_type']} {model_dir}: the checkpoint's tensors are not the ones this forward reads: FAIL")
        return 1
    g, _ = safetensors_io.read(os.path.join(model_dir, "golden.safetensors"))
    ids, mask = g.pop("input_ids").long(), g.pop("attention_mask").long()
    with torch.inference_mode():
        out = arch.forward(cfg, w, ids, mask)
    real = mask.bool()  # values at padded positions are whatever HF computed there: not meaningful
    worst, compared = 0.0, 0
    for name in sorted(g, key=lambda n: (n != "embeddings", n == "final", n)):
        if name not in out:
            print(f"{name:>14}: not produced by this forward, skipped")
            continue
        err = (out[name].float() - g[name].float()).abs()[real].max().item()
        worst, compared = max(worst, err), compared + 1
        print(f"{name:>14}: max abs error {err:.3g}")
    ok = compared > 0 and worst <= TOLERANCE
    print(f"{cfg['model_type']} {os.path.basename(os.path.normpath(model_dir))}: {compared} tensors, "
          f"worst {worst:.3g} (tolerance {TOLERANCE:g}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def bench(a):
    cfg, arch = load_config(a.bench)
    dt = torch.bfloat16 if a.bf16 else torch.float32
    L = a.layers or n_layers_of(cfg)
    # Random weights of the real shapes: throughput does not depend on the values. Norm scales are ones
    # so activations keep a sane range; everything else N(0, 0.02).
    w = {}
    for name, shape in arch.param_shapes(cfg, L).items():
        is_norm_scale = name.endswith(".weight") and ("norm" in name or ".ln_" in name or name.startswith("ln_"))
        w[name] = torch.ones(shape, dtype=dt) if is_norm_scale else torch.empty(shape, dtype=dt).normal_(0, 0.02)
    vocab = cfg["vocab_size"]
    ids = torch.randint(0, vocab, (a.batch, a.seq))
    mask = torch.ones_like(ids)
    times = []
    with torch.inference_mode():
        for rep in range(a.reps + 1):  # rep 0 warms up (allocator, thread pool, kernels) and is not timed
            t0 = time.perf_counter()
            arch.forward(cfg, w, ids, mask, n_layers=L, dtype=dt)
            t = time.perf_counter() - t0
            if rep:
                times.append(t)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"peer": "pytorch-eager", "model_type": cfg["model_type"], "torch": torch.__version__,
                      "dtype": "bfloat16" if a.bf16 else "float32", "threads": torch.get_num_threads(), "layers": L,
                      "batch": a.batch, "seq": a.seq, "median_s": round(med, 4),
                      "tokens_per_s": round(a.batch * a.seq / med, 1)}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", metavar="MODEL_DIR")
    mode.add_argument("--bench", metavar="CONFIG_DIR")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    if a.reps < 1:
        ap.error("--reps must be at least 1")
    torch.set_num_threads(a.threads)
    return check(a.check) if a.check else bench(a)


if __name__ == "__main__":
    sys.exit(main())
