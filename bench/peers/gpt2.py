"""GPT-2 (HF GPT2Model): learned positions, LayerNorm with bias, one fused q|k|v projection, gelu_new MLP.

  x = wte(ids) + wpe(0..T-1)
  per block:  x = x + c_proj(attn(split(c_attn(ln_1(x)))))
              x = x + mlp.c_proj(gelu_new(mlp.c_fc(ln_2(x))))
  final = ln_f(x)
HF's Conv1D layers store weights [in, out] (the transpose of nn.Linear) and compute
addmm(bias, x, W); positions are 0..T-1 whatever the padding (right padding leaves real tokens in place)."""
import torch
import torch.nn.functional as F

import ops


def conv1d(x, w, b):
    """HF Conv1D: y = x @ w + b with w [in, out]."""
    return torch.addmm(b, x.reshape(-1, x.shape[-1]), w).view(*x.shape[:-1], w.shape[-1])


def dims(cfg):
    H = cfg["n_embd"]
    return H, cfg.get("n_inner") or 4 * H, cfg["n_head"]


def param_shapes(cfg, n_layers):
    H, I, _ = dims(cfg)
    s = {"transformer.wte.weight": [cfg["vocab_size"], H], "transformer.wpe.weight": [cfg["n_positions"], H],
         "transformer.ln_f.weight": [H], "transformer.ln_f.bias": [H]}
    for i in range(n_layers):
        p = f"transformer.h.{i}."
        s.update({p + "ln_1.weight": [H], p + "ln_1.bias": [H], p + "ln_2.weight": [H], p + "ln_2.bias": [H],
                  p + "attn.c_attn.weight": [H, 3 * H], p + "attn.c_attn.bias": [3 * H],
                  p + "attn.c_proj.weight": [H, H], p + "attn.c_proj.bias": [H],
                  p + "mlp.c_fc.weight": [H, I], p + "mlp.c_fc.bias": [I],
                  p + "mlp.c_proj.weight": [I, H], p + "mlp.c_proj.bias": [H]})
    return s


def forward(cfg, w, ids, mask, n_layers=None, dtype=torch.float32):
    H, I, nh = dims(cfg)
    hd, eps = H // nh, cfg["layer_norm_epsilon"]
    act = ops.ACT[cfg.get("activation_function", "gelu_new")]
    B, T = ids.shape
    if T > cfg["n_positions"]:
        raise ValueError(f"seq {T} exceeds n_positions {cfg['n_positions']}")
    L = cfg["n_layer"] if n_layers is None else n_layers
    ln = lambda x, name: F.layer_norm(x, (H,), w[name + ".weight"], w[name + ".bias"], eps)

    x = (F.embedding(ids, w["transformer.wte.weight"]) + w["transformer.wpe.weight"][:T]).to(dtype)
    bias = ops.attention_bias(mask, T, None, dtype)
    outs = {"embeddings": x}
    for i in range(L):
        p = f"transformer.h.{i}."
        scale = hd ** -0.5 if cfg.get("scale_attn_weights", True) else 1.0
        if cfg.get("scale_attn_by_inverse_layer_idx", False):
            scale /= i + 1
        qkv = conv1d(ln(x, p + "ln_1"), w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"])
        q, k, v = (ops.heads(t, nh, hd) for t in qkv.split(H, -1))
        z = ops.attend(q, k, v, bias, scale)
        x = x + conv1d(z, w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"])

        m = act(conv1d(ln(x, p + "ln_2"), w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"]))
        x = x + conv1d(m, w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"])
        outs[f"resid_post.{i}"] = x
    if L == cfg["n_layer"]:
        outs["final"] = ln(x, "transformer.ln_f")
    return outs
