#!/usr/bin/env node
// The Hugging Face tokenizers peer of bench_tokenizer: the Rust library through its Node binding (npm
// `tokenizers`, pinned in package.json; install with `npm ci` here, scripts/setup.sh does it).
//   node hf_tokenizers_peer.js TOKENIZER_JSON TEXTS_JSONL WARM_PASSES
// TEXTS_JSONL holds one JSON string per line (bench_tokenizer writes it, so both encode identical input).
// Loads with Tokenizer.fromFile and encodes every text without special tokens (as bench_tokenizer calls
// fme's encode(text, false)), one text at a time: the binding has no synchronous encode, so each text is
// `await tokenizer.encode(text, null, {addSpecialTokens: false})` — one Rust encode on one libuv worker,
// never two at once. "cold" is the first pass of the freshly loaded tokenizer (empty BPE cache), "warm" the
// best of WARM_PASSES further passes. For reference it also times encodeBatch over all texts (serial with
// TOKENIZERS_PARALLELISM=false / RAYON_NUM_THREADS=1), which pays the JS<->Rust handoff once per pass.
// An untimed pass then records per-text token counts and a checksum of all ids (FNV-1a over the ids and each
// text's length) for bench_tokenizer to compare with fme's.
// Prints one JSON line; on failure a JSON line {"error": "..."} and exit status 1.
'use strict';

// One thread everywhere: set before the binding starts its rayon pool or libuv its thread pool.
for (const [k, v] of [['RAYON_NUM_THREADS', '1'], ['TOKENIZERS_PARALLELISM', 'false'], ['UV_THREADPOOL_SIZE', '1']]) {
  if (process.env[k] === undefined) process.env[k] = v;
}

const fs = require('fs');
const path = require('path');

function fail(msg) {
  process.stdout.write(JSON.stringify({ error: msg }) + '\n');
  process.exit(1);
}

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

// FNV-1a (32-bit) over every id, with each text's token count mixed in after its ids.
function mix(h, x) {
  return Math.imul((h ^ x) >>> 0, 16777619) >>> 0;
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length !== 3) fail('usage: node hf_tokenizers_peer.js TOKENIZER_JSON TEXTS_JSONL WARM_PASSES');
  const [tokPath, textsPath, passesArg] = args;
  const passes = Number(passesArg);
  if (!Number.isInteger(passes) || passes < 1) fail(`WARM_PASSES must be a positive integer, got '${passesArg}'`);

  let tokenizers;
  try {
    tokenizers = require('tokenizers');
  } catch (e) {
    fail(`cannot load the npm package 'tokenizers' (run: npm ci --prefix ${__dirname}): ${e.message}`);
  }
  const version = require(path.join(path.dirname(require.resolve('tokenizers')), 'package.json')).version;

  const texts = fs.readFileSync(textsPath, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
  let bytes = 0;
  for (const t of texts) bytes += Buffer.byteLength(t, 'utf8');

  const t0 = now();
  let tok;
  try {
    tok = tokenizers.Tokenizer.fromFile(tokPath);
  } catch (e) {
    fail(`Tokenizer.fromFile(${tokPath}): ${e.message}`);
  }
  const load = now() - t0;
  const opts = { addSpecialTokens: false };

  let cold = 0;
  let warm = Infinity;
  let tokens = 0;
  for (let pass = 0; pass <= passes; ++pass) {
    let n = 0;
    const p0 = now();
    for (const t of texts) n += (await tok.encode(t, null, opts)).getLength();
    const s = now() - p0;
    tokens = n;
    if (pass === 0) cold = s;
    else warm = Math.min(warm, s);
  }

  let batchWarm = Infinity;
  for (let pass = 0; pass < passes; ++pass) {
    const p0 = now();
    const encs = await tok.encodeBatch(texts, opts);
    const s = now() - p0;
    if (encs.length !== texts.length) fail(`encodeBatch returned ${encs.length} encodings for ${texts.length} texts`);
    batchWarm = Math.min(batchWarm, s);
  }

  // Untimed: per-text counts and the ids checksum.
  const docTokens = [];
  let h = 2166136261;
  for (const t of texts) {
    const ids = (await tok.encode(t, null, opts)).getIds();
    for (const id of ids) h = mix(h, id);
    h = mix(h, ids.length);
    docTokens.push(ids.length);
  }

  process.stdout.write(
    JSON.stringify({
      peer: 'hf-tokenizers',
      hf_version: version,
      node_version: process.version,
      api: 'await Tokenizer.encode(text, null, {addSpecialTokens: false}) per text',
      env: {
        RAYON_NUM_THREADS: process.env.RAYON_NUM_THREADS,
        TOKENIZERS_PARALLELISM: process.env.TOKENIZERS_PARALLELISM,
        UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE,
      },
      documents: texts.length,
      bytes,
      tokens,
      ids_fnv1a32: h.toString(16).padStart(8, '0'),
      doc_tokens: docTokens,
      load_s: load,
      cold_s: cold,
      warm_s: warm,
      mb_per_s_cold: bytes / cold / 1e6,
      mb_per_s_warm: bytes / warm / 1e6,
      mtok_per_s_cold: tokens / cold / 1e6,
      mtok_per_s_warm: tokens / warm / 1e6,
      batch_warm_s: batchWarm,
      batch_mb_per_s_warm: bytes / batchWarm / 1e6,
    }) + '\n',
  );
}

main().catch((e) => fail(String(e && e.stack ? e.stack : e)));
