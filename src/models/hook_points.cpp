#include "models/hook_points.h"

#include <map>

#include "util/error.h"

namespace fme {

const char* block_point_suffix(BlockPoint p) {
  switch (p) {
    case BlockPoint::ResidPre: return "hook_resid_pre";
    case BlockPoint::AttnZ: return "attn.hook_z";
    case BlockPoint::AttnOut: return "hook_attn_out";
    case BlockPoint::ResidMid: return "hook_resid_mid";
    case BlockPoint::MlpPost: return "mlp.hook_post";
    case BlockPoint::MlpOut: return "hook_mlp_out";
    case BlockPoint::ResidPost: return "hook_resid_post";
  }
  return "?";
}

std::string block_hook_name(int64_t layer, BlockPoint p) {
  return "blocks." + std::to_string(layer) + "." + block_point_suffix(p);
}

std::vector<HookPoint> block_hook_points(int64_t layers, int64_t hidden, int64_t intermediate, int64_t heads,
                                         int64_t head_dim) {
  std::vector<HookPoint> out;
  for (int64_t i = 0; i < layers; ++i)
    for (int p = 0; p < kBlockPoints; ++p) {
      const auto bp = static_cast<BlockPoint>(p);
      std::vector<int64_t> shape{hidden};
      if (bp == BlockPoint::AttnZ) shape = {heads, head_dim};
      if (bp == BlockPoint::MlpPost) shape = {intermediate};
      out.push_back({block_hook_name(i, bp), shape, i, true, p});
    }
  return out;
}

Capture::Capture(const std::vector<HookPoint>& available, const std::vector<std::string>& names, CaptureFn fn)
    : fn_(std::move(fn)) {
  std::map<std::string, const HookPoint*> by_name;
  for (const auto& h : available) by_name[h.name] = &h;
  for (const auto& n : names) {
    auto it = by_name.find(n);
    if (it == by_name.end()) throw ConfigError("capture: the model has no hook point '" + n + "'");
    const HookPoint& h = *it->second;
    last_block_ = std::max(last_block_, h.block);
    if (h.point < 0) {
      others_.insert(n);
      continue;
    }
    if (static_cast<int64_t>(blocks_.size()) <= h.block) blocks_.resize(h.block + 1, 0);
    blocks_[h.block] |= 1u << h.point;
  }
}

Capture Capture::all(const std::vector<HookPoint>& available, CaptureFn fn) {
  std::vector<std::string> names;
  for (const auto& h : available) names.push_back(h.name);
  return Capture(available, names, std::move(fn));
}

}  // namespace fme
