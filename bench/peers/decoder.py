"""The Llama-family pre-norm decoder: llama, mistral, qwen2, qwen3 differ only in the flags of Arch.

  x = embed(ids)
  per block:  x = x + o_proj(attn(rope(q), rope(k), v))   on rms_norm(x)   (qwen3: q_norm/k_norm per head before rope)
              x = x + down(act(gate(h)) * up(h))          on h = rms_norm(x)
  final = rms_norm(x)
Tied embeddings do not matter here: the forward stops at the final norm (no lm_head)."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import ops


@dataclass
class Arch:
    hidden: int
    inter: int
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    qkv_bias: bool  # biases on q/k/v projections
    o_bias: bool    # bias on o_proj
    mlp_bias: bool  # biases on gate/up/down
    qk_norm: bool   # qwen3: RMSNorm over head_dim on every q and k head, before rope
    act: str


def arch(cfg):
    mt = cfg["model_type"]
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    attn_bias = bool(cfg.get("attention_bias", False))
    return Arch(
        hidden=H, inter=cfg["intermediate_size"], heads=nh,
        kv_heads=cfg.get("num_key_value_heads") or nh,
        head_dim=cfg.get("head_dim") or H // nh,  # explicit head_dim (qwen3, some mistral) may differ from H / nh
        eps=cfg["rms_norm_eps"],
        qkv_bias=mt == "qwen2" or (mt in ("llama", "qwen3") and attn_bias),  # Qwen2Attention: q/k/v always biased
        o_bias=mt in ("llama", "qwen3") and attn_bias,                      # mistral: never biased
        mlp_bias=mt == "llama" and bool(cfg.get("mlp_bias", False)),
        qk_norm=mt == "qwen3",
        act=cfg.get("hidden_act", "silu"),
    )


def layer_window(cfg, i):
    """Sliding window of block i, or None for full causal attention (HF 4.56 semantics): an explicit
    config.layer_types wins; mistral slides on every layer when sliding_window is set; qwen2/qwen3 only
    with use_sliding_window, on layers >= max_window_layers; llama never."""
    mt, win = cfg["model_type"], cfg.get("sliding_window")
    types = cfg.get("layer_types")
    if types and i < len(types):
        return win if types[i] == "sliding_attention" else None
    if mt == "mistral":
        return win
    if mt in ("qwen2", "qwen3") and cfg.get("use_sliding_window", False) and win is not None:
        return win if i >= cfg.get("max_window_layers", 0) else None
    return None


def param_shapes(cfg, n_layers):
    """{HF tensor name: shape} of everything the forward reads (what --bench instantiates at random)."""
    a = arch(cfg)
    H, I, qd, kvd = a.hidden, a.inter, a.heads * a.head_dim, a.kv_heads * a.head_dim
    s = {"model.embed_tokens.weight": [cfg["vocab_size"], H], "model.norm.weight": [H]}
    for i in range(n_layers):
        p = f"model.layers.{i}."
        s.update({p + "input_layernorm.weight": [H], p + "post_attention_layernorm.weight": [H],
                  p + "self_attn.q_proj.weight": [qd, H], p + "self_attn.k_proj.weight": [kvd, H],
                  p + "self_attn.v_proj.weight": [kvd, H], p + "self_attn.o_proj.weight": [H, qd],
                  p + "mlp.gate_proj.weight": [I, H], p + "mlp.up_proj.weight": [I, H], p + "mlp.down_proj.weight": [H, I]})
        if a.qkv_bias:
            s.update({p + "self_attn.q_proj.bias": [qd], p + "self_attn.k_proj.bias": [kvd], p + "self_attn.v_proj.bias": [kvd]})
        if a.o_bias:
            s[p + "self_attn.o_proj.bias"] = [H]
        if a.mlp_bias:
            s.update({p + "mlp.gate_proj.bias": [I], p + "mlp.up_proj.bias": [I], p + "mlp.down_proj.bias": [H]})
        if a.qk_norm:
            s.update({p + "self_attn.q_norm.weight": [a.head_dim], p + "self_attn.k_norm.weight": [a.head_dim]})
    return s


def forward(cfg, w, ids, mask, n_layers=None, dtype=torch.float32):
    a = arch(cfg)
    B, T = ids.shape
    L = cfg["num_hidden_layers"] if n_layers is None else n_layers
    lin = lambda x, name, bias: F.linear(x, w[name + ".weight"], w[name + ".bias"] if bias else None)

    x = F.embedding(ids, w["model.embed_tokens.weight"]).to(dtype)
    cos, sin = ops.rope_cos_sin(ops.rope_inv_freq(cfg, a.head_dim), T, dtype)
    windows = [layer_window(cfg, i) for i in range(L)]
    bias = {win: ops.attention_bias(mask, T, win, dtype) for win in set(windows)}  # one mask per kind, as HF
    outs = {"embeddings": x}
    for i in range(L):
        p = f"model.layers.{i}."
        h = ops.rms_norm(x, w[p + "input_layernorm.weight"], a.eps)
        q = lin(h, p + "self_attn.q_proj", a.qkv_bias).view(B, T, a.heads, a.head_dim)
        k = lin(h, p + "self_attn.k_proj", a.qkv_bias).view(B, T, a.kv_heads, a.head_dim)
        v = lin(h, p + "self_attn.v_proj", a.qkv_bias).view(B, T, a.kv_heads, a.head_dim)
        if a.qk_norm:
            q = ops.rms_norm(q, w[p + "self_attn.q_norm.weight"], a.eps)
            k = ops.rms_norm(k, w[p + "self_attn.k_norm.weight"], a.eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = ops.apply_rope(q, cos, sin), ops.apply_rope(k, cos, sin)
        z = ops.attend(q, k, v, bias[windows[i]], a.head_dim ** -0.5)
        x = x + lin(z, p + "self_attn.o_proj", a.o_bias)

        h = ops.rms_norm(x, w[p + "post_attention_layernorm.weight"], a.eps)
        m = ops.ACT[a.act](lin(h, p + "mlp.gate_proj", a.mlp_bias)) * lin(h, p + "mlp.up_proj", a.mlp_bias)
        x = x + lin(m, p + "mlp.down_proj", a.mlp_bias)
        outs[f"resid_post.{i}"] = x
    if L == cfg["num_hidden_layers"]:
        outs["final"] = ops.rms_norm(x, w["model.norm.weight"], a.eps)
    return outs
