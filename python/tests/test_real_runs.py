"""Runs made by `fme extract` read back through fme.open_run and compared row for row with the C++ side
(`fme forward` on the same texts writes every hook point for every token), plus verify() and the summary CLI."""

import json
import os
import subprocess
import sys

import numpy as np

import fme
from conftest import TEXT, run_fme, write_safetensors
from fme.shards import load_shard

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z"]


def test_rows_equal_fme_forward_on_the_same_texts(run_fp32, tiny_model, tmp_path):
    run = fme.open_run(run_fp32)
    with open(TEXT) as f:
        lines = [json.loads(x) for x in f][: len(run)]
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": x["text"]}) + "\n" for x in lines))
    out = tmp_path / "forward.safetensors"
    run_fme("forward", "--model", tiny_model, "--texts", texts, "--out", out, "--hooks", ",".join(HOOKS),
            "--dtype", "fp32", "--threads", "1")
    fwd = load_shard(str(out))
    assert len(run) == len(lines) == fwd["input_ids"].shape[0]
    assert run.sample_index.tolist() == list(range(len(lines)))
    for i in range(len(run)):
        tok, rows = run.sample(i)
        n = int(fwd["attention_mask"][i].sum())
        assert np.array_equal(tok, fwd["input_ids"][i, :n]), f"sample {i}: token ids differ"
        for h in HOOKS:
            np.testing.assert_allclose(rows[h], fwd[h][i, :n], rtol=0, atol=2e-5, err_msg=f"sample {i} {h}")
    # The lazy array over all shards is the samples' rows in order.
    assert np.array_equal(np.asarray(run[HOOKS[0]]), np.concatenate([run.sample(i)[1][HOOKS[0]] for i in range(len(run))]))


def test_manifest_records_the_token_ids_readers_need(run_fp32, tiny_model):
    run = fme.open_run(run_fp32)
    with open(os.path.join(tiny_model, "config.json")) as f:
        assert run.bos_token_id() == json.load(f).get("bos_token_id")
    with open(os.path.join(tiny_model, "tokenizer.json")) as f:
        special = sorted(a["id"] for a in json.load(f)["added_tokens"] if a.get("special"))
    assert run.special_token_ids().tolist() == special


def test_verify_and_summary_on_real_runs(run_fp32, run_bf16_zstd):
    for path in (run_fp32, run_bf16_zstd):
        run = fme.open_run(path)
        info = run.verify()  # sha256, indices and the manifest's fp64 statistics recomputed here
        assert info["samples"] == len(run) and info["tokens"] == run.num_rows > 0
        assert len(run.samples) == len(run) and run.samples[0]["sample_index"] == 0
        p = subprocess.run([sys.executable, "-m", "fme", path, "--verify"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        assert p.returncode == 0 and f"tokens:      {run.num_rows}" in p.stdout, p.stderr
    assert fme.open_run(run_bf16_zstd).points[HOOKS[0]].dtype == "BF16"


def test_bert_run_of_pre_tokenized_input_equals_fme_forward(shared_data, tmp_path):
    """The other family: bert-tiny (post-norm, token types) over pre-tokenized samples of ragged lengths."""
    model = os.path.join(shared_data, "models", "bert-tiny")
    rng = np.random.default_rng(3)
    docs = [rng.integers(1000, 30000, n).tolist() for n in (5, 31, 17, 64, 2, 40)]
    data = tmp_path / "ids.jsonl"
    data.write_text("".join(json.dumps({"input_ids": d}) + "\n" for d in docs))
    hooks = ["blocks.0.hook_resid_post", "blocks.1.mlp.hook_post", "blocks.1.attn.hook_z"]
    run_fme("extract", "--model", model, "--dataset", data, "--format", "tokens-jsonl", "--hooks", ",".join(hooks),
            "--out", tmp_path / "run", "--out-dtype", "fp32", "--dtype", "fp32", "--shard-size", "20000",
            "--quiet", "--threads", "1")
    T = max(map(len, docs))
    ids = np.zeros((len(docs), T), np.int64)
    mask = np.zeros((len(docs), T), np.int64)
    for i, d in enumerate(docs):
        ids[i, :len(d)], mask[i, :len(d)] = d, 1
    write_safetensors(tmp_path / "in.safetensors", {"input_ids": ids, "attention_mask": mask})
    run_fme("forward", "--model", model, "--inputs", tmp_path / "in.safetensors", "--out", tmp_path / "f.safetensors",
            "--hooks", ",".join(hooks), "--dtype", "fp32", "--threads", "1")
    fwd = load_shard(str(tmp_path / "f.safetensors"))
    run = fme.open_run(tmp_path / "run")
    assert run.num_shards >= 2 and len(run) == len(docs)
    for i, d in enumerate(docs):
        tok, rows = run.sample(i)
        assert tok.tolist() == d
        for h in hooks:
            assert rows[h].shape == fwd[h][i, :len(d)].shape
            np.testing.assert_allclose(rows[h], fwd[h][i, :len(d)], rtol=0, atol=2e-5, err_msg=f"sample {i} {h}")
    assert run.bos_token_id() is None  # BERT declares no BOS: exclude=("bos",) keeps every row
    assert len(np.concatenate(list(run.batches(hooks[0], batch_tokens=16)))) == run.num_rows


def test_a_run_cut_into_work_units_reads_as_the_same_dataset(run_fp32, tiny_model, tmp_path):
    """--unit-samples: shards under units/unit-NNNNNN/, one manifest; with bucket windows dividing the unit, every
    row, id and sample record equals the plain run's (run_fp32 batches its 24 documents in windows of 256)."""
    out = tmp_path / "units"
    run_fme("extract", "--model", tiny_model, "--dataset", TEXT, "--out", out, "--max-samples", "24",
            "--hooks", ",".join(HOOKS), "--shard-size", "200000", "--quiet", "--threads", "1", "--dtype", "fp32",
            "--out-dtype", "fp32", "--unit-samples", "8", "--bucket-window", "8")
    plain = tmp_path / "plain"
    run_fme("extract", "--model", tiny_model, "--dataset", TEXT, "--out", plain, "--max-samples", "24",
            "--hooks", ",".join(HOOKS), "--shard-size", "200000", "--quiet", "--threads", "1", "--dtype", "fp32",
            "--out-dtype", "fp32", "--bucket-window", "8")
    a, b = fme.open_run(plain), fme.open_run(out)
    b.verify()
    assert {s["file"].split("/")[1] for s in b.manifest["shards"]} == {"unit-000000", "unit-000001", "unit-000002"}
    assert len(a) == len(b) == 24
    np.testing.assert_array_equal(a.token_ids, b.token_ids)
    for point in HOOKS:
        np.testing.assert_array_equal(np.asarray(a[point]), np.asarray(b[point]))
    assert [s["sample_index"] for s in a.samples] == [s["sample_index"] for s in b.samples]
    ids, rows = b.sample(13)
    ids_a, rows_a = a.sample(13)
    np.testing.assert_array_equal(ids, ids_a)
    np.testing.assert_array_equal(rows[HOOKS[1]], rows_a[HOOKS[1]])
