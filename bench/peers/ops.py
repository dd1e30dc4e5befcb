"""Building blocks shared by the peers, each written the way Hugging Face transformers' modeling code
computes it (eager attention), so that fp32 results match the HF goldens to float rounding.

Activations stay in the run's dtype (fp32 or bf16); norms and softmax are computed in fp32 and cast
back, as HF does."""
import math

import torch
import torch.nn.functional as F

# config "hidden_act" / "hidden_activation" -> function. gelu_new (GPT-2) is the same tanh approximation
# as gelu_pytorch_tanh; torch's fused kernel is what a fair eager peer uses.
ACT = {
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
}


def rms_norm(x, w, eps):
    """Llama/Qwen RMSNorm: normalise in fp32, cast back to the activation dtype, then scale by w."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def rope_inv_freq(cfg, dim):
    """Inverse frequencies of the rotary embedding over `dim` channels, with config.rope_scaling applied
    as HF's rope_init_fns do (default, linear, llama3)."""
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / rs["factor"]
    if kind == "llama3":
        # Llama 3.1+: long wavelengths are slowed by `factor`, short ones kept, the band between
        # interpolated smoothly (transformers' _compute_llama3_parameters).
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        lo_wavelen, hi_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        out = torch.where(wavelen > lo_wavelen, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wavelen < hi_wavelen) & ~(wavelen > lo_wavelen)
        return torch.where(medium, smoothed, out)
    raise NotImplementedError(f"rope_scaling type {kind!r}")


def rope_cos_sin(inv_freq, T, dtype):
    """cos/sin tables [T, dim] for positions 0..T-1: computed once per forward in fp32, then cast (HF's
    rotary_emb runs once in the model and hands the same tables to every layer)."""
    f = torch.outer(torch.arange(T).float(), inv_freq)
    emb = torch.cat([f, f], -1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x, cos, sin):
    """x [B, heads, T, d]: the half-split rotation (rotate_half) HF uses, not interleaved pairs."""
    d = x.shape[-1]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def attention_bias(mask, T, window, dtype):
    """Additive mask [B, 1, T, T]: key j is visible from query i when j <= i, the key is not padding and,
    for a sliding-window layer, i - j < window (HF's sliding_window_overlay: kv_idx > q_idx - window).
    Hidden keys get finfo(dtype).min, as HF's eager masks do, so a fully hidden row (a padded query)
    softmaxes to a uniform row instead of NaN; such rows are padding and never read."""
    q = torch.arange(T)[:, None]
    k = torch.arange(T)[None, :]
    allowed = k <= q
    if window is not None:
        allowed = allowed & (k > q - window)
    allowed = allowed[None, None] & mask.bool()[:, None, None, :]
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


def attend(q, k, v, bias, scale, softcap=None):
    """Eager scaled-dot-product attention. q [B, nh, T, d], k/v [B, nkv, T, d] (grouped-query heads are
    repeated, as HF's repeat_kv does); scores * scale, optional tanh soft-capping (Gemma 2), + mask,
    softmax in fp32, back to the activation dtype, @ v. Returns [B, T, nh * d]."""
    B, nh, T, d = q.shape
    rep = nh // k.shape[1]
    if rep > 1:
        k = k.repeat_interleave(rep, 1)
        v = v.repeat_interleave(rep, 1)
    s = (q @ k.transpose(-1, -2)) * scale
    if softcap is not None:
        s = torch.tanh(s / softcap) * softcap
    p = torch.softmax(s + bias, -1, dtype=torch.float32).to(q.dtype)
    return (p @ v).transpose(1, 2).reshape(B, T, nh * d)


def heads(x, n, d):
    """[B, T, n*d] -> [B, n, T, d]."""
    B, T, _ = x.shape
    return x.view(B, T, n, d).transpose(1, 2)
