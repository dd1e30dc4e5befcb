#!/usr/bin/env python3
# Makes the pinned values of rope_test.cpp (run with Debian's python3-torch: /usr/bin/python3 this-file).
# Transcription of HF transformers' _compute_default_rope_parameters + _compute_llama3_parameters
# (modeling_rope_utils.py) and LlamaRotaryEmbedding.forward, evaluated with torch.
import math, torch
def llama3_inv_freq(dim, base, factor, low_freq_factor, high_freq_factor, old_context_len):
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
inv = llama3_inv_freq(64, 500000.0, 32.0, 1.0, 4.0, 8192)
pos = torch.tensor([0, 1, 7, 100, 4095, 12345], dtype=torch.float)
freqs = (inv[None, :, None].float() @ pos[None, None, :].float()).transpose(1, 2)[0]
emb = torch.cat((freqs, freqs), dim=-1)
cos, sin = emb.cos(), emb.sin()
print("inv_freq:", ", ".join("%.9ef" % v for v in inv.tolist()))
for name, t in (("cos", cos), ("sin", sin)):
    print(name, "rows 100 and 12345, cols 0,5,12,20,31:", [["%.9e" % t[r, c].item() for c in (0, 5, 12, 20, 31)] for r in (3, 5)])
