#include "util/compress.h"

#include <zstd.h>

#include <memory>
#include <vector>

#include "util/error.h"

namespace fme {

std::string zstd_decompress(std::string_view data, const std::string& what) {
  unsigned long long n = ZSTD_getFrameContentSize(data.data(), data.size());
  if (n == ZSTD_CONTENTSIZE_ERROR) throw FormatError(what + ": not a zstd frame");
  if (n == ZSTD_CONTENTSIZE_UNKNOWN) {  // streamed frames: decompress chunk by chunk
    std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    std::string out;
    std::vector<char> buf(ZSTD_DStreamOutSize());
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    size_t r = 1;
    while (in.pos < in.size) {
      ZSTD_outBuffer o{buf.data(), buf.size(), 0};
      r = ZSTD_decompressStream(ctx.get(), &o, &in);
      if (ZSTD_isError(r)) throw FormatError(what + ": zstd: " + ZSTD_getErrorName(r));
      out.append(buf.data(), o.pos);
    }
    if (r != 0) throw FormatError(what + ": zstd: truncated frame");
    return out;
  }
  std::string out(static_cast<size_t>(n), '\0');
  size_t r = ZSTD_decompress(out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(r)) throw FormatError(what + ": zstd: " + ZSTD_getErrorName(r));
  out.resize(r);
  return out;
}

std::string zstd_compress(std::string_view data, int level) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t r = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(r)) throw Error(std::string("zstd compression failed: ") + ZSTD_getErrorName(r));
  out.resize(r);
  return out;
}

}  // namespace fme

#include <fstream>
#include <vector>

#include "util/file.h"

namespace fme {

uint64_t zstd_compress_file(const std::string& src, const std::string& dst, int level) {
  std::ifstream in(src, std::ios::binary);
  if (!in) throw IoError(src + ": cannot open");
  AtomicFile out(dst);
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> ctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  ZSTD_CCtx_setParameter(ctx.get(), ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(ctx.get(), ZSTD_c_checksumFlag, 1);
  in.seekg(0, std::ios::end);
  ZSTD_CCtx_setPledgedSrcSize(ctx.get(), static_cast<unsigned long long>(in.tellg()));  // records the size
  in.seekg(0, std::ios::beg);
  std::vector<char> ibuf(ZSTD_CStreamInSize()), obuf(ZSTD_CStreamOutSize());
  bool last = false;
  while (!last) {
    in.read(ibuf.data(), static_cast<std::streamsize>(ibuf.size()));
    if (in.bad()) throw IoError(src + ": read failed");
    const size_t n = static_cast<size_t>(in.gcount());
    last = n < ibuf.size();
    ZSTD_inBuffer input{ibuf.data(), n, 0};
    const ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
    bool done = false;
    while (!done) {
      ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
      size_t remaining = ZSTD_compressStream2(ctx.get(), &output, &input, mode);
      if (ZSTD_isError(remaining)) throw Error(src + ": zstd: " + ZSTD_getErrorName(remaining));
      out.write(obuf.data(), output.pos);
      done = last ? remaining == 0 : input.pos == input.size;
    }
  }
  out.commit();
  return out.bytes_written();
}

}  // namespace fme
