#include "data/gzip_file.h"

#include <libdeflate.h>

#include <cstdint>
#include <fstream>
#include <memory>

#include "core/machine.h"

namespace ddp {

std::optional<std::vector<unsigned char>> inflate_gzip_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return std::nullopt;
  const std::streamoff size = in.tellg();
  // A member is at least 18 bytes of header and trailer. The buffer is allocated (and zeroed) for
  // the size the trailer claims before inflating can show it false: a claim of more than 64 times
  // the file (deflate allows 1032; IDX images inflate 2-5 times) goes through the stream, whose
  // memory follows the bytes really there (IdxFile::read_data).
  constexpr std::streamoff kMinMember = 18;
  constexpr uint64_t kMaxRatio = 64;
  const uint64_t half_memory = memory_limit_bytes() / 2;
  if (size < kMinMember || static_cast<uint64_t>(size) > half_memory) return std::nullopt;
  // The magic first: a plain file is left to the stream without being read twice.
  char magic[2];
  in.seekg(0);
  if (!in.read(magic, 2) || magic[0] != '\x1f' || magic[1] != '\x8b') return std::nullopt;
  std::vector<unsigned char> packed(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(packed.data()), size)) return std::nullopt;
  const unsigned char* trailer = packed.data() + packed.size() - 4;
  const uint64_t isize = trailer[0] | (uint64_t{trailer[1]} << 8) | (uint64_t{trailer[2]} << 16) |
                         (uint64_t{trailer[3]} << 24);
  if (isize > half_memory || isize > kMaxRatio * packed.size()) return std::nullopt;
  const std::unique_ptr<libdeflate_decompressor, decltype(&libdeflate_free_decompressor)> inflater(
      libdeflate_alloc_decompressor(), &libdeflate_free_decompressor);
  if (!inflater) return std::nullopt;
  std::vector<unsigned char> bytes(static_cast<size_t>(isize));
  size_t read = 0, written = 0;
  if (libdeflate_gzip_decompress_ex(inflater.get(), packed.data(), packed.size(), bytes.data(),
                                    bytes.size(), &read, &written) != LIBDEFLATE_SUCCESS ||
      read != packed.size() || written != bytes.size())
    return std::nullopt;
  return bytes;
}

}  // namespace ddp
