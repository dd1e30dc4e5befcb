// zstd compression of whole buffers (shipped tokenizer assets; compressed shards).
#pragma once
#include <string>
#include <string_view>

namespace fme {

// Throws FormatError naming `what` if the data is not a valid zstd frame.
std::string zstd_decompress(std::string_view data, const std::string& what);
std::string zstd_compress(std::string_view data, int level = 3);

}  // namespace fme

namespace fme {
// Streams `src` through zstd into `dst`, written atomically (temp, fsync, rename). Returns dst's size.
uint64_t zstd_compress_file(const std::string& src, const std::string& dst, int level = 3);
}  // namespace fme
