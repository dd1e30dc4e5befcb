"""Gemma 2: the pre-norm decoder with Gemma's twists (HF Gemma2Model, 4.56 semantics).

  x = embed(ids) * sqrt(hidden)           the scalar rounded to the activation dtype first (HF's normalizer)
  per block:  x = x + post_attn_norm(o_proj(attn(norm(x))))
              x = x + post_ffw_norm(down(gelu_tanh(gate(h)) * up(h)))   on h = pre_ffw_norm(x)
  final = norm(x)
Norms are (1 + w) RMSNorms computed wholly in fp32; attention scales by query_pre_attn_scalar^-0.5 (not
head_dim), soft-caps scores with tanh at attn_logit_softcapping, and alternates sliding-window / full
layers. final_logit_softcapping acts on logits only, which this forward does not compute."""
import torch
import torch.nn.functional as F

import ops


def norm(x, w, eps):
    """Gemma RMSNorm: scale by (1 + w), in fp32, then cast (unlike Llama, which casts before scaling)."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w.float())).to(x.dtype)


def layer_window(cfg, i):
    """config.layer_types when present; otherwise HF's default: even layers (0, 2, ...) slide."""
    types = cfg.get("layer_types")
    kind = types[i] if types and i < len(types) else ("sliding_attention" if i % 2 == 0 else "full_attention")
    return cfg["sliding_window"] if kind == "sliding_attention" else None


def dims(cfg):
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    return H, cfg["intermediate_size"], nh, cfg.get("num_key_value_heads") or nh, cfg.get("head_dim") or H // nh


def param_shapes(cfg, n_layers):
    H, I, nh, nkv, hd = dims(cfg)
    s = {"model.embed_tokens.weight": [cfg["vocab_size"], H], "model.norm.weight": [H]}
    for i in range(n_layers):
        p = f"model.layers.{i}."
        s.update({p + "input_layernorm.weight": [H], p + "post_attention_layernorm.weight": [H],
                  p + "pre_feedforward_layernorm.weight": [H], p + "post_feedforward_layernorm.weight": [H],
                  p + "self_attn.q_proj.weight": [nh * hd, H], p + "self_attn.k_proj.weight": [nkv * hd, H],
                  p + "self_attn.v_proj.weight": [nkv * hd, H], p + "self_attn.o_proj.weight": [H, nh * hd],
                  p + "mlp.gate_proj.weight": [I, H], p + "mlp.up_proj.weight": [I, H], p + "mlp.down_proj.weight": [H, I]})
        if cfg.get("attention_bias", False):
            s.update({p + "self_attn.q_proj.bias": [nh * hd], p + "self_attn.k_proj.bias": [nkv * hd],
                      p + "self_attn.v_proj.bias": [nkv * hd], p + "self_attn.o_proj.bias": [H]})
    return s


def forward(cfg, w, ids, mask, n_layers=None, dtype=torch.float32):
    H, I, nh, nkv, hd = dims(cfg)
    eps, softcap = cfg["rms_norm_eps"], cfg.get("attn_logit_softcapping")
    act = ops.ACT[cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh"]
    scale = cfg["query_pre_attn_scalar"] ** -0.5
    attn_bias = cfg.get("attention_bias", False)
    B, T = ids.shape
    L = cfg["num_hidden_layers"] if n_layers is None else n_layers
    lin = lambda x, name, b=False: F.linear(x, w[name + ".weight"], w[name + ".bias"] if b else None)

    x = F.embedding(ids, w["model.embed_tokens.weight"]).to(dtype)
    x = x * torch.tensor(H ** 0.5, dtype=dtype)  # in bf16 sqrt(hidden) itself is rounded, as in HF
    cos, sin = ops.rope_cos_sin(ops.rope_inv_freq(cfg, hd), T, dtype)
    windows = [layer_window(cfg, i) for i in range(L)]
    bias = {win: ops.attention_bias(mask, T, win, dtype) for win in set(windows)}
    outs = {"embeddings": x}
    for i in range(L):
        p = f"model.layers.{i}."
        h = norm(x, w[p + "input_layernorm.weight"], eps)
        q = ops.apply_rope(ops.heads(lin(h, p + "self_attn.q_proj", attn_bias), nh, hd), cos, sin)
        k = ops.apply_rope(ops.heads(lin(h, p + "self_attn.k_proj", attn_bias), nkv, hd), cos, sin)
        v = ops.heads(lin(h, p + "self_attn.v_proj", attn_bias), nkv, hd)
        z = ops.attend(q, k, v, bias[windows[i]], scale, softcap)
        x = x + norm(lin(z, p + "self_attn.o_proj", attn_bias), w[p + "post_attention_layernorm.weight"], eps)

        h = norm(x, w[p + "pre_feedforward_layernorm.weight"], eps)
        m = act(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj")
        x = x + norm(lin(m, p + "mlp.down_proj"), w[p + "post_feedforward_layernorm.weight"], eps)
        outs[f"resid_post.{i}"] = x
    if L == cfg["num_hidden_layers"]:
        outs["final"] = norm(x, w["model.norm.weight"], eps)
    return outs
