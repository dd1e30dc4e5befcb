// "[2, 3, 4]": how every error message and table in fme prints a shape (any container of integers,
// e.g. std::vector<int64_t> or at::IntArrayRef).
#pragma once
#include <string>

namespace fme {

template <class Dims>
std::string shape_str(const Dims& dims) {
  std::string out = "[";
  bool first = true;
  for (auto d : dims) {
    out += (first ? "" : ", ") + std::to_string(d);
    first = false;
  }
  return out + "]";
}

}  // namespace fme
