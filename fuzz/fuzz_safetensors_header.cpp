// libFuzzer entry: arbitrary bytes as a whole safetensors file. Either parse_safetensors_header throws an
// fme::Error, or what it returns must satisfy the format's invariants (checked here, trap if not) and
// every tensor's bytes must lie inside the input (ASan checks the reads).
#include <cstddef>
#include <cstdint>

#include "formats/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fme::SafetensorsHeader h;
  try {
    h = fme::parse_safetensors_header(data, size, size, "fuzz.safetensors");
  } catch (const fme::Error&) {
    return 0;  // rejected cleanly; any other exception escapes and libFuzzer reports it
  }
  if (h.data_start < 8 || h.data_start > size) __builtin_trap();
  const uint64_t data_len = size - h.data_start;
  uint64_t pos = 0;
  volatile uint8_t sink = 0;
  for (const fme::TensorInfo& t : h.tensors) {
    if (t.begin != pos || t.end < t.begin || t.end > data_len) __builtin_trap();  // contiguous, in bounds
    if (t.nbytes() != t.numel() * fme::dtype_size(t.dtype)) __builtin_trap();
    for (int64_t d : t.shape)
      if (d < 0) __builtin_trap();
    const uint8_t* p = data + h.data_start + t.begin;
    for (uint64_t i = 0; i < t.nbytes(); ++i) sink = sink ^ p[i];
    pos = t.end;
  }
  if (pos != data_len) __builtin_trap();  // covers the data section exactly
  (void)sink;
  return 0;
}
