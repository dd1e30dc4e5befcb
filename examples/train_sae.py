#!/usr/bin/env python3
"""A sparse autoencoder trained on a run of `fme extract`, with numpy alone (after scripts/run.sh:
python3 examples/train_sae.py build/demo/run). x -> f = relu(W_enc (x - b_dec) + b_enc) -> x^ = W_dec f + b_dec,
loss = |x - x^|^2 + l1 * |f|_1 on inputs scaled to unit mean squared norm (the manifest's statistics), Adam."""
import argparse, os, sys
import numpy as np
try:
    import fme
except ImportError:  # run from the checkout without `pip install ./python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")); import fme

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("run", nargs="?", default="build/demo/run"); ap.add_argument("--point", default=None)
ap.add_argument("--expansion", type=int, default=4); ap.add_argument("--l1", type=float, default=3e-3)
ap.add_argument("--epochs", type=int, default=3); ap.add_argument("--lr", type=float, default=1e-3)
a = ap.parse_args()
run = fme.open_run(a.run)
point = a.point or list(run.points)[-1]
d = int(np.prod(run.points[point].row_shape)); m = d * a.expansion
scale = 1 / np.sqrt(run.manifest["stats"][point]["mean_sq_norm"])  # SAELens-style input normalisation
rng = np.random.default_rng(0)
P = {"W_dec": (rng.standard_normal((m, d)) / np.sqrt(d)).astype(np.float32)}
P.update(W_enc=P["W_dec"].T.copy(), b_enc=np.zeros(m, np.float32), b_dec=np.zeros(d, np.float32))
M = {k: np.zeros_like(v) for k, v in P.items()}; V = {k: np.zeros_like(v) for k, v in P.items()}
stream, t = run.batches(point, batch_tokens=256, seed=0), 0
for epoch in range(a.epochs):
    for x in stream:  # one epoch per pass: every stored row once, shuffled across shards
        x = x.reshape(len(x), d) * scale; xc = x - P["b_dec"]
        pre = xc @ P["W_enc"] + P["b_enc"]; f = np.maximum(pre, 0); err = f @ P["W_dec"] + P["b_dec"] - x
        g_out = 2 * err / len(x); g_pre = (g_out @ P["W_dec"].T + a.l1 / len(x)) * (pre > 0)
        G = {"W_dec": f.T @ g_out, "b_dec": g_out.sum(0) - (g_pre @ P["W_enc"].T).sum(0),
             "W_enc": xc.T @ g_pre, "b_enc": g_pre.sum(0)}
        t += 1
        for k in P:  # Adam
            M[k] = 0.9 * M[k] + 0.1 * G[k]; V[k] = 0.999 * V[k] + 0.001 * G[k] ** 2
            P[k] -= a.lr * (M[k] / (1 - 0.9 ** t)) / (np.sqrt(V[k] / (1 - 0.999 ** t)) + 1e-8)
    mse = float((err ** 2).sum(-1).mean()); l0 = float((f > 0).sum(-1).mean())
    print(f"epoch {epoch}: {stream.rows_per_epoch} rows of {point}, last batch mse {mse:.4f} (of 1.0), L0 {l0:.1f} of {m}")
