#!/usr/bin/env python3
"""fme.Tokenizer (the Python binding) against the fme CLI and Hugging Face tokenizers, on the same texts in the
same run: MB/s of UTF-8 text encoded without special tokens, warm (best of --passes after a first pass).

  binding      fme.Tokenizer.encode per text, and encode_batch over all texts
  cli          `fme tokenize --no-special-tokens` over the texts as JSONL, whole process (start, load, I/O)
  hf           npm tokenizers (the Rust library, Node binding) via bench/tokenizer/peer, one text at a time
               (its encodeBatch too), one thread; ids compared through the peer's FNV-1a checksum

    bench_tokenizer_binding.py [--tokenizers qwen2.5,bert-base-uncased,...] [--passes 3] [--fme build/bin/fme]
Run with the venv's python (build/venv/bin/python), where the package has its native module.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.abspath(os.path.join(REPO, "..", "shared", "data"))
PEER = os.path.join(REPO, "bench", "tokenizer", "peer", "hf_tokenizers_peer.js")


def fnv_ids(all_ids):
    """The peer's checksum: FNV-1a (32-bit) over every id, each text's count mixed in after its ids."""
    h = 2166136261
    for ids in all_ids:
        for x in list(ids) + [len(ids)]:
            h = ((h ^ (x & 0xFFFFFFFF)) * 16777619) & 0xFFFFFFFF
    return f"{h:08x}"


def best(passes, fn):
    fn()  # cold pass: the word cache fills
    out = float("inf")
    for _ in range(passes):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizers", default="qwen2.5,bert-base-uncased,llama3,gpt2")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--fme", default=os.path.join(REPO, "build", "bin", "fme"))
    ap.add_argument("--texts", default=os.path.join(SHARED, "text", "fineweb-legal-sample", "batch_000001.jsonl"))
    a = ap.parse_args()
    import fme

    with open(a.texts) as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    nbytes = sum(len(t.encode()) for t in texts)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"bench_tokenizer_binding: {cpu}; {len(texts)} texts, {nbytes / 1e6:.2f} MB ({a.texts})")
    with tempfile.TemporaryDirectory() as tmp:
        jsonl, strings = os.path.join(tmp, "texts.jsonl"), os.path.join(tmp, "strings.jsonl")
        with open(jsonl, "w") as f:
            f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
        with open(strings, "w") as f:
            f.writelines(json.dumps(t) + "\n" for t in texts)
        for name in a.tokenizers.split(","):
            d = os.path.join(SHARED, "tokenizers", name)
            tok = fme.Tokenizer.from_dir(d)
            per_text = best(a.passes, lambda: [tok.encode(t, add_special_tokens=False) for t in texts])
            batch = best(a.passes, lambda: tok.encode_batch(texts, add_special_tokens=False))
            ids = tok.encode_batch(texts, add_special_tokens=False)

            def cli():
                with open(jsonl) as f:
                    subprocess.run([a.fme, "tokenize", "--tokenizer", d, "--no-special-tokens"], stdin=f,
                                   stdout=subprocess.DEVNULL, check=True)
            cli_s = best(a.passes, cli)
            hf = {"error": "node not found"} if not shutil.which("node") else None
            if hf is None:
                p = subprocess.run(["node", PEER, os.path.join(d, "tokenizer.json"), strings, str(a.passes)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                hf = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {"error": p.stderr.strip()}
            line = {"tokenizer": name, "binding_mb_s": round(nbytes / per_text / 1e6, 2),
                    "binding_batch_mb_s": round(nbytes / batch / 1e6, 2), "cli_mb_s": round(nbytes / cli_s / 1e6, 2)}
            if "error" in hf:
                line["hf_error"] = hf["error"]
            else:
                line.update(hf_mb_s=round(hf["mb_per_s_warm"], 2), hf_batch_mb_s=round(hf["batch_mb_per_s_warm"], 2),
                            binding_over_hf=round(nbytes / per_text / 1e6 / hf["mb_per_s_warm"], 2),
                            ids_equal_hf=fnv_ids(ids) == hf["ids_fnv1a32"])
            print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
