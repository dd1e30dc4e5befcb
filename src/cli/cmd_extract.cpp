// fme extract --model DIR --dataset PATH --out DIR [...] : residual-stream activations into shards.
#include <chrono>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "dist/launch_env.h"
#include "dist/process_group.h"
#include "pipelines/extract/extract.h"

namespace fme::cli {

void add_extract(CLI::App& app) {
  auto o = std::make_shared<ExtractOptions>();
  CLI::App* cmd = app.add_subcommand("extract", "Store activations at chosen hook points for every real token");
  cmd->add_option("--model", o->model_dir, "HF-format model directory (config.json, safetensors, tokenizer.json)")->required();
  cmd->add_option("--dataset", o->dataset, "ARC task directory, ARC JSONL, text JSONL or pre-tokenized JSONL")->required();
  cmd->add_option("--out", o->out, "run directory (shards, manifest.json, samples.jsonl), or s3://bucket/prefix with --staging")->required();
  cmd->add_option("--format", o->format, "auto | arc-dir | arc-jsonl | arc-file | text-jsonl | tokens-jsonl");
  cmd->add_option("--text-field", o->text_field, "JSON field holding the text (text-jsonl)");
  cmd->add_option("--max-samples", o->max_samples, "stop after this many samples (after augmentation)");
  cmd->add_option("--prompt-template", o->prompt_template, "ARC prompt template JSON (default: the built-in arc24 template)");
  // Values are checked by run_extract (check_extract_options), which the Python binding shares.
  cmd->add_option("--chat", o->chat,
                  "ARC prompts' chat wrapping: auto (the model's chat template from tokenizer_config.json: ChatML, "
                  "Llama 3 or Gemma; plain text when it has none) | model | template (the prompt template's own "
                  "'chat') | plain ('{system}\\n{user}\\n{assistant}' with the tokenizer's special tokens)");
  cmd->add_option("--augment", o->augment, "ARC: geometric+colour variants per task (0 = none, up to 8)");
  cmd->add_option("--seed", o->seed, "seed for augmentation");
  cmd->add_option("--max-seq-len", o->max_seq_len, "truncate longer samples to N tokens (counted and marked)");
  cmd->add_option("--skip-longer", o->skip_longer, "skip samples longer than N tokens (counted and marked)");
  cmd->add_flag("--exclude-special-tokens", o->exclude_special_tokens,
                "do not store the rows of the tokenizer's special tokens ([CLS], [SEP], <|im_start|>, ...)");
  cmd->add_flag("--exclude-bos", o->exclude_bos, "do not store a sample's first row when it is the model's BOS token");
  cmd->add_option("--hooks", o->hooks,
                  "hook points to store: 'blocks.{10..23}.hook_resid_post,blocks.12.hook_mlp_out' (lists, {a..b} ranges, "
                  "* globs; also hook_resid_pre, attn.hook_z, hook_attn_out, hook_resid_mid, mlp.hook_post, "
                  "ln_final.hook_normalized)");
  cmd->add_option("--layers", o->layers,
                  "shorthand for those blocks' hook_resid_post: 10-23, 0,5,7-9 or all (default, without --hooks: all)");
  cmd->add_option("--dtype", o->dtype,
                  "compute dtype: auto | fp32 | bf16 (auto: bf16 only where this hardware multiplies bf16 natively and "
                  "faster than fp32, else fp32)");
  cmd->add_option("--weights-dtype", o->weights_dtype,
                  "dtype the weights are kept in: fp32 | bf16 (default: the compute dtype; bf16 with fp32 compute "
                  "halves the weights' memory at fp32 speed)");
  cmd->add_option("--out-dtype", o->out_dtype, "storage dtype: bf16 | fp32 | fp16 (default: bf16; on --resume, the run's)");
  cmd->add_option("--batch-tokens", o->batch_tokens, "padded tokens per batch (length-bucketed)");
  cmd->add_option("--batch-size", o->batch_size, "or: samples per batch");
  cmd->add_option("--bucket-window", o->bucket_window, "samples sorted by length together");
  cmd->add_option("--shard-size", o->shard_size, "target shard size in bytes (default 1 GiB)");
  cmd->add_option("--compress", o->compress, "none | zstd");
  cmd->add_flag("--resume", o->resume, "continue the run in --out after a crash");
  cmd->add_option("--unit-samples", o->unit_samples,
                  "cut the run into work units of this many consecutive samples, each its own directory under units/ "
                  "with one manifest over them (what ranks share under torchrun/mpirun/srun)");
  cmd->add_option("--upload", o->upload, "also put the run into object storage as it is written: s3://bucket/prefix (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; region AWS_REGION)");
  cmd->add_option("--staging", o->staging, "with --out s3://bucket/prefix: the local directory the run is written in before its upload");
  cmd->add_option("--s3-endpoint", o->s3_endpoint, "S3-compatible endpoint, http(s)://host[:port] (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS S3 of the region; Google Cloud Storage: https://storage.googleapis.com with HMAC keys)");
  cmd->add_option("--part-size", o->part_size, "multipart upload part size in bytes (default 64 MiB; at least 5 MiB)");
  cmd->add_option("--upload-parallel", o->upload_parallel, "parts uploaded at once (default 4)");
  cmd->add_option("--max-staged", o->max_staged, "committed bytes not yet uploaded before compute waits for the uploads (default 8 GiB)");
  cmd->add_flag("--delete-local", o->delete_local, "remove each shard's local file once its upload is verified");
  cmd->add_flag("--quiet", o->quiet, "no progress output");
  add_threads_option(cmd, &o->threads);
  auto timeout_s = std::make_shared<double>(300);
  cmd->add_option("--timeout", *timeout_s, "with many processes: seconds to wait for the others to arrive");
  cmd->add_option("--unit-lease-s", o->unit_lease_s,
                  "with many processes: a unit whose owner stops beating this long is taken over by another rank (default 600)");
  cmd->callback([o, timeout_s] {
    apply_threads(o->threads);
    // Under torchrun, mpirun or srun the processes form one run: they claim work units through the store.
    const dist::LaunchEnv env = dist::launch_env_from_environment();
    std::shared_ptr<dist::Dist> dist;
    if (env.is_distributed()) {
      if (o->unit_samples == 0) o->unit_samples = 256;  // the default unit: minutes of work for ARC prompts
      dist = dist::Dist::init(env, std::chrono::milliseconds(static_cast<int64_t>(*timeout_s * 1000)));  // the world group alone
    }
    ExtractSummary s = run_extract(*o, dist);
    if (!dist || dist->rank() == 0) std::cout << s.to_json() << std::endl;
  });
}

}  // namespace fme::cli
