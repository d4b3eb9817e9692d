#pragma once
// Note [whole-file gzip]: a gzip file of one member is inflated in one call by libdeflate, about
// twice as fast as zlib's stream (Fashion-MNIST's training images, 47 MB: see
// benchmarks/results/xeon/idx_inflate.md), which every rank pays at every start. The member's
// trailer gives the inflated size (ISIZE) to allocate. Anything else (several members, a trailer
// that lies, damage, bytes after the member, a file or size beyond half of memory, a size over 64
// times the file's, not gzip at all) gets nothing back, and the caller reads the file through
// zlib's stream instead, whose errors it reports. libdeflate checks the trailer's CRC-32 and size,
// as zlib does.

#include <optional>
#include <string>
#include <vector>

namespace ddp {

std::optional<std::vector<unsigned char>> inflate_gzip_file(const std::string& path);

}  // namespace ddp
