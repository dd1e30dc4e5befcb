// Checks shared by the architectures' config.json parsers (src/models/<family>/config.cpp): each throws
// ConfigError naming the file (`what`) and the key.
#pragma once
#include <cstdint>
#include <string>

namespace fme {

void check_positive(int64_t v, const char* key, const std::string& what);
void check_positive(double v, const char* key, const std::string& what);
// hidden % heads == 0.
void check_heads(int64_t hidden, int64_t heads, const std::string& what);
// initializer_range >= 0.
void check_initializer_range(double v, const std::string& what);
// A dropout probability: in [0, 1).
void check_probability(double v, const char* key, const std::string& what);

}  // namespace fme
