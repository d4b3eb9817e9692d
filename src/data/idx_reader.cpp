// IDX format (LeCun): magic = 0x00 0x00 <type> <ndims>, then ndims big-endian uint32 sizes, then
// the data. MNIST and Fashion-MNIST use type 0x08 (unsigned byte): 3 dims for images, 1 for labels
// (2 for several labels per sample).

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

#include "core/error.h"
#include "core/input_file.h"
#include "core/machine.h"
#include "data/dataset.h"
#include "data/gzip_file.h"

namespace ddp {
namespace {

struct GzFileCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

// zlib reads plain files transparently, so one path serves .gz and uncompressed IDX files; a gzip
// file of one member is inflated whole instead (Note [whole-file gzip]).
class IdxFile {
 public:
  explicit IdxFile(const std::string& path) : path_(path) {
    expect_regular_file<DataError>(path);
    whole_ = inflate_gzip_file(path);
    errno = 0;
    if (!whole_) file_.reset(gzopen(path.c_str(), "rb"));
    if (!whole_ && !file_)
      throw DataError(path + ": cannot open: " + (errno ? std::strerror(errno) : "out of memory"));
    unsigned char magic[4];
    read(magic, sizeof magic, "header");
    if (magic[0] != 0 || magic[1] != 0)
      throw DataError(path + ": not an IDX file (magic bytes " + hex(magic[0]) + " " +
                      hex(magic[1]) + ", expected 00 00)");
    if (magic[2] != 0x08)
      throw DataError(path + ": IDX element type " + hex(magic[2]) +
                      " is not supported (expected 08, unsigned byte)");
    if (magic[3] == 0) throw DataError(path + ": IDX file declares 0 dimensions");
    for (int i = 0; i < magic[3]; ++i) {
      unsigned char b[4];
      read(b, 4, "dimension sizes");
      dims_.push_back((int64_t(b[0]) << 24) | (int64_t(b[1]) << 16) | (int64_t(b[2]) << 8) | b[3]);
    }
  }

  const std::vector<int64_t>& dims() const { return dims_; }
  const std::string& path() const { return path_; }
  // Uncompressed: the file holds its values as they are, after the header.
  bool plain() const { return !whole_ && gzdirect(file_.get()); }
  size_t header_bytes() const { return 4 + 4 * dims_.size(); }

  // Reads the values the header declares, in chunks, so memory follows the bytes that are really
  // there: a header that claims more (up to 2^32 per dimension) cannot make every rank allocate
  // and zero-fill a huge buffer before the truncation shows. Address space for up to kReserve
  // bytes is taken at once (untouched pages cost nothing), so that growing does not copy.
  std::vector<unsigned char> read_data() {
    const uint64_t count = declared_values();
    if (whole_) return whole_data(count);
    std::vector<unsigned char> data;
    constexpr uint64_t kChunk = uint64_t{16} << 20, kReserve = uint64_t{1} << 30;
    data.reserve(static_cast<size_t>(std::min(count, kReserve)));
    while (data.size() < count) {
      const size_t done = data.size();
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, count - done));
      data.resize(done + want);
      const size_t got = read_some(data.data() + done, want, "data");
      if (got < want)
        throw DataError(path_ + ": truncated in data (expected " + std::to_string(count) +
                        " bytes, got " + std::to_string(done + got) + ")");
    }
    unsigned char extra;
    if (gzread(file_.get(), &extra, 1) > 0) throw trailing_bytes(count);
    return data;
  }

 private:
  static std::string hex(unsigned v) {
    static const char digits[] = "0123456789abcdef";
    return {digits[(v >> 4) & 15], digits[v & 15]};
  }

  // The product of the dimensions, refused before it can overflow or exceed what this machine
  // could hold as training data (a byte per value, kept as bytes: Dataset::byte_features).
  uint64_t declared_values() const {
    const uint64_t memory = memory_limit_bytes();
    const uint64_t limit = std::max<uint64_t>(memory, 1);
    uint64_t count = 1;
    std::string shape;
    for (int64_t d : dims_) shape += (shape.empty() ? "" : " x ") + std::to_string(d);
    for (int64_t d : dims_) {
      const auto dim = static_cast<uint64_t>(d);
      if (dim != 0 && count > limit / dim)
        throw DataError(path_ + ": the header declares " + shape +
                        " values, more than this process's " + std::to_string(memory >> 20) +
                        " MiB of memory could hold");
      count *= dim;
    }
    return count;
  }

  DataError trailing_bytes(uint64_t count) const {
    return DataError(path_ + ": unexpected bytes after the " + std::to_string(count) +
                     " data bytes its header declares");
  }

  // The rest of the inflated file, which must be the `count` data bytes.
  std::vector<unsigned char> whole_data(uint64_t count) {
    const size_t left = whole_->size() - at_;
    if (left < count)
      throw DataError(path_ + ": truncated in data (expected " + std::to_string(count) +
                      " bytes, got " + std::to_string(left) + ")");
    if (left > count) throw trailing_bytes(count);
    whole_->erase(whole_->begin(), whole_->begin() + static_cast<std::ptrdiff_t>(at_));
    return std::move(*whole_);
  }

  // Up to `bytes` bytes; fewer only at the end of the file.
  size_t read_some(unsigned char* p, size_t bytes, const char* what) {
    if (whole_) {
      const size_t n = std::min(bytes, whole_->size() - at_);
      std::copy_n(whole_->data() + at_, n, p);
      at_ += n;
      return n;
    }
    size_t done = 0;
    while (done < bytes) {
      const auto chunk = static_cast<unsigned>(std::min<size_t>(bytes - done, 1u << 30));
      const int n = gzread(file_.get(), p + done, chunk);
      int code = Z_OK;
      const char* message = gzerror(file_.get(), &code);
      if (code == Z_ERRNO)
        throw DataError(path_ + ": read error in " + what + ": " + std::strerror(errno));
      if (n < 0 || (code != Z_OK && code != Z_BUF_ERROR))
        throw DataError(path_ + ": corrupt gzip data in " + what + ": " + message);
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  void read(void* out, size_t bytes, const char* what) {
    const size_t done = read_some(static_cast<unsigned char*>(out), bytes, what);
    if (done < bytes)
      throw DataError(path_ + ": truncated in " + what + " (expected " + std::to_string(bytes) +
                      " bytes, got " + std::to_string(done) + ")");
  }

  std::string path_;
  std::optional<std::vector<unsigned char>> whole_;  // the inflated file (Note [whole-file gzip])
  size_t at_ = 0;                                    // how much of it was read
  std::unique_ptr<gzFile_s, GzFileCloser> file_;     // otherwise, zlib's stream
  std::vector<int64_t> dims_;
};

}  // namespace

Dataset read_idx(const std::string& images_path, const std::string& labels_path, float scale) {
  IdxFile images(images_path);
  IdxFile labels(labels_path);
  if (images.dims().size() < 2)
    throw DataError(images_path + ": an image file needs at least 2 dimensions, found " +
                    std::to_string(images.dims().size()));
  // (samples): a class index each; (samples, labels): several 0/1 labels each (multi-label).
  if (labels.dims().size() != 1 && labels.dims().size() != 2)
    throw DataError(labels_path + ": a label file needs 1 dimension (or 2, several labels per " +
                    "sample), found " + std::to_string(labels.dims().size()));
  if (images.dims()[0] != labels.dims()[0])
    throw DataError(images_path + " has " + std::to_string(images.dims()[0]) + " images but " +
                    labels_path + " has " + std::to_string(labels.dims()[0]) + " labels");

  Dataset data;
  data.origin = labels_path;  // label range errors name the label file
  data.sample_shape = Shape(std::vector<int64_t>(images.dims().begin() + 1, images.dims().end()));
  data.byte_scale = scale;
  // An uncompressed image file whose size is what its header declares is read in place (Note
  // [mapped features]); the reads below name any other mismatch.
  std::shared_ptr<const MappedFile> mapping;
  if (images.plain()) mapping = std::make_shared<const MappedFile>(images_path);
  uint64_t declared = 1;
  bool overflow = false;
  for (const int64_t d : images.dims())
    overflow |= __builtin_mul_overflow(declared, static_cast<uint64_t>(d), &declared);
  if (mapping && !overflow && mapping->bytes().size() - images.header_bytes() == declared) {
    data.mapped = mapping->bytes().subspan(images.header_bytes());
    data.mapping = std::move(mapping);
    data.mapped_bytes = true;
  } else {
    data.byte_features = images.read_data();
  }
  const std::vector<unsigned char> label_bytes = labels.read_data();
  data.labels.assign(label_bytes.begin(), label_bytes.end());
  if (labels.dims().size() == 2) {
    if (labels.dims()[1] == 0) throw DataError(labels_path + ": 0 labels per sample");
    data.label_width = labels.dims()[1];
  }
  return data;
}

}  // namespace ddp
