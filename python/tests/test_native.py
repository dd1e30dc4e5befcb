"""fme._native, the C++ bindings: the tokenizer against Hugging Face's ids and `fme tokenize`, and extract against
`fme extract` (the same shard bytes), its progress callback, interruption and errors."""

import glob
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import threading
import time
import unicodedata

import pytest

from conftest import TEXT, read_jsonl, run_fme
from fme import _native

# Every shared tokenizer decodes every document back: the NFC text (Qwen's NFC normalizer) or the exact text.
NFC_ROUND_TRIP = {"qwen2.5", "qwen3"}
EXACT_ROUND_TRIP = {"gpt2", "llama3", "mistral", "gemma3"}


def reference_docs(shared_data):
    """[(texts, {tokenizer: {doc: ids}})] for every X.jsonl with an X.token_ids.jsonl (HF's ids)."""
    out = []
    for ids_path in sorted(glob.glob(os.path.join(shared_data, "text", "*", "*.token_ids.jsonl"))):
        texts = [j["text"] for j in read_jsonl(ids_path[: -len(".token_ids.jsonl")] + ".jsonl")]
        ref = {}
        for j in read_jsonl(ids_path):
            ref.setdefault(j["tokenizer"], {})[j["doc"]] = j["ids"]
        out.append((texts, ref))
    return out


@pytest.fixture(scope="module")
def docs(shared_data):
    d = reference_docs(shared_data)
    assert len(d) >= 4, "expected the FineWeb and Common Crawl samples with HF ids"
    return d


@pytest.fixture(scope="module")
def tokenizers(shared_data, docs):
    names = sorted({name for _, ref in docs for name in ref})
    assert set(names) >= NFC_ROUND_TRIP | EXACT_ROUND_TRIP | {"bert-base-uncased"}
    return {n: _native.Tokenizer.from_dir(os.path.join(shared_data, "tokenizers", n)) for n in names}


# ---- Tokenizer ---------------------------------------------------------------------------------------------


def test_encode_equals_hf_for_every_document_and_tokenizer(docs, tokenizers):
    # As tests/tokenizer/test_reference.cpp: HF's encode(text) with its default add_special_tokens=True.
    for name, tok in tokenizers.items():
        total, wrong = 0, []
        for texts, ref in docs:
            assert sorted(ref[name]) == list(range(len(texts))), name
            for n, want in ref[name].items():
                total += 1
                if tok.encode(texts[n]) != want or tok.encode(texts[n], add_special_tokens=True) != want:
                    wrong.append(n)
        assert not wrong, f"{name}: documents {wrong} differ from HF"
        assert total >= 220, name  # 2 x 100 FineWeb + 2 x 10 Common Crawl


def test_encode_batch_equals_hf_in_order(docs, tokenizers):
    for name, tok in tokenizers.items():
        all_texts, all_ids = [], []
        for texts, ref in docs:
            want = [ref[name][n] for n in range(len(texts))]
            assert tok.encode_batch(texts) == want, name
            all_texts += texts
            all_ids += want
        # One batch of every document (1.6 MB): spread over every core.
        assert tok.encode_batch(all_texts, add_special_tokens=True) == all_ids, name
    qwen = tokenizers["qwen2.5"]
    assert qwen.encode_batch([]) == []
    # A text that fails on a worker thread fails the call (bytes are taken as UTF-8, and these are not).
    with pytest.raises(_native.Error, match="not valid UTF-8"):
        qwen.encode_batch(["word " * 4000] * 16 + [b"ok \xff"] + ["word " * 4000] * 16)


def test_without_special_tokens(docs, tokenizers):
    texts, ref = docs[0]
    bert, qwen = tokenizers["bert-base-uncased"], tokenizers["qwen2.5"]
    cls, sep = bert.token_to_id("[CLS]"), bert.token_to_id("[SEP]")
    for n in range(3):
        want = ref["bert-base-uncased"][n]
        assert want[0] == cls and want[-1] == sep
        assert bert.encode(texts[n], add_special_tokens=False) == want[1:-1]
        assert qwen.encode(texts[n], False) == ref["qwen2.5"][n]  # Qwen's post-processor adds nothing
    inner = [ref["bert-base-uncased"][n][1:-1] for n in range(3)]
    assert bert.encode_batch(texts[:3], add_special_tokens=False) == inner


def test_decode_round_trips(docs, tokenizers):
    # As tests/tokenizer/test_decode.cpp.
    for texts, _ in docs:
        for text in texts:
            for name in NFC_ROUND_TRIP:
                tok = tokenizers[name]
                assert tok.decode(tok.encode(text)) == unicodedata.normalize("NFC", text), name
            for name in EXACT_ROUND_TRIP:
                tok = tokenizers[name]
                assert tok.decode(tok.encode(text), skip_special_tokens=True) == text, name
                assert tok.decode(tok.encode(text, add_special_tokens=False)) == text, name


def test_vocabulary_lookups(tokenizers):
    bert, qwen = tokenizers["bert-base-uncased"], tokenizers["qwen2.5"]
    assert bert.vocab_size == 30522
    assert bert.token_to_id("[CLS]") == 101 and bert.id_to_token(101) == "[CLS]"
    assert bert.token_to_id("the") == 1996 and bert.id_to_token(1996) == "the"
    assert bert.token_to_id("no-such-token-here") is None
    assert bert.id_to_token(bert.vocab_size) is None
    assert {0, 100, 101, 102, 103} <= set(bert.special_ids)
    im_start = qwen.token_to_id("<|im_start|>")
    assert im_start is not None and im_start in qwen.special_ids
    assert qwen.special_ids == sorted(qwen.special_ids)
    assert max(qwen.special_ids) < qwen.vocab_size
    # Special tokens written in the text are matched whole; decode may drop them.
    ids = qwen.encode("<|im_start|>user\nhi<|im_end|>")
    assert ids[0] == im_start
    assert qwen.decode(ids) == "<|im_start|>user\nhi<|im_end|>"
    assert qwen.decode(ids, skip_special_tokens=True) == "user\nhi"


def test_from_dir_takes_the_file_or_a_pathlike(shared_data):
    d = pathlib.Path(shared_data) / "tokenizers" / "bert-base-uncased"
    a, b = _native.Tokenizer.from_dir(d), _native.Tokenizer.from_dir(str(d / "tokenizer.json"))
    assert a.encode("Hello, world!") == b.encode("Hello, world!") == [101, 7592, 1010, 2088, 999, 102]
    with pytest.raises(_native.Error, match="no-such-dir"):
        _native.Tokenizer.from_dir(d.parent / "no-such-dir")
    with pytest.raises(TypeError):
        _native.Tokenizer.from_dir(3)


def test_ids_equal_fme_tokenize(fme_bin, shared_data, docs):
    texts = docs[0][0][:5] + ["", "  leading and trailing  ", "<|im_start|>system\nYou are<|im_end|>\n",
                              "café 北京 🙂\t\r\n"]
    stdin = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    for name in ("bert-base-uncased", "qwen2.5", "llama3"):
        path = os.path.join(shared_data, "tokenizers", name)
        tok = _native.Tokenizer.from_dir(path)
        for flags, special in (([], True), (["--no-special-tokens"], False)):
            proc = subprocess.run([fme_bin, "tokenize", "--tokenizer", path, *flags], input=stdin, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
            cli = [json.loads(line)["ids"] for line in proc.stdout.splitlines()]
            assert cli == [tok.encode(t, add_special_tokens=special) for t in texts], (name, flags)
            assert cli == tok.encode_batch(texts, add_special_tokens=special), (name, flags)


# ---- extract -----------------------------------------------------------------------------------------------

# Every option of `fme extract` with a value other than its default where that is cheap, as flags and keywords.
CLI_OPTIONS = ["--format", "text-jsonl", "--text-field", "text", "--max-samples", "6", "--max-seq-len", "200",
               "--hooks", "blocks.0.hook_resid_post,blocks.1.attn.hook_z", "--layers", "1", "--dtype", "fp32",
               "--weights-dtype", "bf16", "--out-dtype", "fp32", "--batch-tokens", "1024", "--bucket-window", "4",
               "--shard-size", "30000", "--compress", "zstd", "--seed", "3", "--exclude-special-tokens",
               "--threads", "1", "--quiet"]
KEYWORDS = dict(format="text-jsonl", text_field="text", max_samples=6, max_seq_len=200,
                hooks=["blocks.0.hook_resid_post", "blocks.1.attn.hook_z"], layers=[1], dtype="fp32",
                weights_dtype="bf16", out_dtype="fp32", batch_tokens=1024, bucket_window=4, shard_size=30000,
                compress="zstd", seed=3, exclude_special_tokens=True, threads=1, quiet=True)


def run_files(run):
    """What defines a run's output: its identity, shards (name, bytes, sha256, counts), totals and samples.jsonl."""
    m = json.load(open(os.path.join(run, "manifest.json")))
    for s in m["shards"]:
        with open(os.path.join(run, s["file"]), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == s["sha256"]
    samples = open(os.path.join(run, "samples.jsonl"), "rb").read()
    return m["identity"], m["settings_hash"], m["shards"], m["totals"], m["hooks"], samples


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("cli") / "run"
    run_fme("extract", "--model", tiny_model, "--dataset", TEXT, "--out", out, *CLI_OPTIONS)
    return str(out)


def test_extract_writes_the_bytes_fme_extract_writes(tmp_path, tiny_model, cli_run):
    calls = []
    summary = _native.extract(tiny_model, pathlib.Path(TEXT), tmp_path / "run", progress=calls.append, **KEYWORDS)
    got, want = run_files(tmp_path / "run"), run_files(cli_run)
    assert got == want
    assert len(want[2]) >= 2  # several shards, compared byte for byte through their sha256
    assert summary["samples"] == summary["stored_samples"] == 6
    assert summary["shards"] == len(want[2]) and summary["tokens"] == want[3]["tokens"] > 0
    assert summary["excluded_tokens"] == want[3]["excluded_tokens"]
    assert (summary["dtype"], summary["weights_dtype"], summary["out_dtype"]) == ("fp32", "bf16", "fp32")
    assert {"seconds", "tokens_per_s", "bytes", "truncated", "skipped"} <= set(summary)
    # The callback: the same counters as the progress line (samples and tokens as the forward pass computes them,
    # shards and bytes as they commit), growing to the summary's.
    assert len(calls) >= 2 and all(set(c) == {"samples", "total_samples", "tokens", "shards", "bytes"} for c in calls)
    for key in ("samples", "tokens", "shards", "bytes"):
        assert all(a[key] <= b[key] for a, b in zip(calls, calls[1:])), key
        assert calls[-1][key] == summary[key]
    assert calls[0]["shards"] < calls[-1]["shards"]
    assert all(c["total_samples"] == 6 for c in calls)


def test_extract_defaults_match_the_cli(tmp_path, tiny_model):
    run_fme("extract", "--model", tiny_model, "--dataset", TEXT, "--out", tmp_path / "cli", "--max-samples", "3",
            "--quiet")
    _native.extract(tiny_model, TEXT, str(tmp_path / "py"), max_samples=3, quiet=True, threads=None, chat=None)
    assert run_files(tmp_path / "py") == run_files(tmp_path / "cli")


class CallbackFailed(Exception):
    pass


def test_progress_exception_propagates_unchanged(tmp_path, tiny_model):
    err = CallbackFailed("stop here")

    def progress(stats):
        raise err

    with pytest.raises(CallbackFailed) as info:
        _native.extract(tiny_model, TEXT, tmp_path / "run", progress=progress, max_samples=4, batch_size=1, quiet=True)
    assert info.value is err
    m = json.load(open(tmp_path / "run" / "manifest.json"))
    assert not m["complete"]  # stopped at the first commit check, and resumable
    _native.extract(tiny_model, TEXT, tmp_path / "run", max_samples=4, batch_size=1, quiet=True, resume=True)
    assert json.load(open(tmp_path / "run" / "manifest.json"))["complete"]


def test_ctrl_c_interrupts_a_run(tmp_path, tiny_model):
    # Many one-sample batches; SIGINT arrives once the run directory exists, while the GIL is released.
    dataset = tmp_path / "many.jsonl"
    dataset.write_text("".join(json.dumps({"text": f"sample {i} " * 20}) + "\n" for i in range(3000)))
    out = tmp_path / "run"

    def interrupt():
        while not (out / "manifest.json").exists():
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        killer = threading.Thread(target=interrupt)
        killer.start()
        with pytest.raises(KeyboardInterrupt):
            _native.extract(tiny_model, dataset, out, batch_size=1, quiet=True, threads=1)
        killer.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    m = json.load(open(out / "manifest.json"))
    assert not m["complete"] and m["next_sample"] < 3000


def test_extract_option_errors(tmp_path, tiny_model):
    with pytest.raises(TypeError, match=r"'batch_tokns'.*valid:.*batch_tokens.*threads"):
        _native.extract(tiny_model, TEXT, tmp_path / "a", batch_tokns=10)
    wrong = (("max_samples", "3"), ("quiet", 1), ("chat", 3), ("threads", 1.5), ("hooks", 7), ("layers", [True]))
    for name, value in wrong:
        with pytest.raises(TypeError, match=f"'{name}'"):
            _native.extract(tiny_model, TEXT, tmp_path / "b", **{name: value})
    with pytest.raises(TypeError, match="progress"):
        _native.extract(tiny_model, TEXT, tmp_path / "c", progress=3)
    with pytest.raises(ValueError, match="seed"):
        _native.extract(tiny_model, TEXT, tmp_path / "d", seed=-1)
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_extract_value_errors_are_the_clis(tmp_path, tiny_model, fme_bin):
    assert issubclass(_native.Error, RuntimeError)
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(_native.Error, match="no-such-model"):
        _native.extract(missing, TEXT, tmp_path / "run", quiet=True)
    # The checks CLI11 made (--chat's values, --threads > 0) are the C++ functions both front ends call, and
    # run_extract's own: the same message either way.
    cases = ((["--chat", "nonsense"], dict(chat="nonsense")), (["--threads", "0"], dict(threads=0)),
             (["--compress", "lz4"], dict(compress="lz4")), (["--exclude-bos"], dict(exclude_bos=True)),
             (["--delete-local"], dict(delete_local=True)),
             (["--part-size", "1000", "--upload", "s3://bkt/x"], dict(part_size=1000, upload="s3://bkt/x")),
             (["--unit-samples", "-2"], dict(unit_samples=-2)))
    for flags, keywords in cases:
        with pytest.raises(_native.Error) as info:
            _native.extract(tiny_model, TEXT, tmp_path / "run", quiet=True, **keywords)
        cli = run_fme("extract", "--model", tiny_model, "--dataset", TEXT, "--out", tmp_path / "run", "--quiet", *flags,
                      check=False)
        assert cli.returncode == 1
        assert cli.stderr.strip() == f"fme extract: error: {info.value}"
        assert flags[0] in str(info.value), flags
    with pytest.raises(_native.Error, match="blocks.99"):
        _native.extract(tiny_model, TEXT, tmp_path / "run", hooks="blocks.99.hook_resid_post", quiet=True)
