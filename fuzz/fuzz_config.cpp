// libFuzzer entry: arbitrary bytes as a config.json. Parsing either throws an fme::Error or yields a
// config that must survive to_json -> parse unchanged (trap if not); other exceptions escape as crashes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "models/model_config.h"
#include "util/error.h"
#include "util/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  fme::Json j;
  fme::ModelConfig c;
  try {
    j = fme::parse_json_unique_keys(text, "fuzz/config.json");
    c = fme::parse_model_config(j, "fuzz/config.json");
  } catch (const fme::Error&) {
    return 0;
  }
  fme::Json out = fme::to_json(c);
  fme::ModelConfig back = fme::parse_model_config(fme::Json::parse(out.dump()), "roundtrip");  // must not throw
  if (fme::to_json(back) != out) __builtin_trap();
  return 0;
}
