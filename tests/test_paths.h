// Where tests find the fme binary they run and the shared reference data (../shared/data), from the paths
// CMake compiles in (tests/CMakeLists.txt: FME_BINARY_DIR, FME_SHARED_DATA).
#pragma once
#include <string>

namespace fme::test {

inline const std::string kFme = std::string(FME_BINARY_DIR) + "/bin/fme";
inline std::string shared(const std::string& rel) { return std::string(FME_SHARED_DATA) + "/" + rel; }

}  // namespace fme::test
