#include "data/npy_reader.h"

#include <zip.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "core/error.h"
#include "core/input_file.h"
#include "core/machine.h"

namespace ddp {
namespace {

// One parsed array: its header's facts and its raw values, still in the file's byte order.
struct NpyArray {
  std::string origin;  // "x.npy" or "d.npz: x.npy", for messages
  char kind = 0;       // 'f' float, 'i' signed, 'u' unsigned, 'b' bool
  size_t item = 0;     // bytes per value
  bool swap = false;   // big-endian on this little-endian machine
  std::vector<int64_t> shape;
  std::span<const std::byte> data;

  uint64_t count() const {
    uint64_t n = 1;
    for (const int64_t d : shape) n *= static_cast<uint64_t>(d);
    return n;
  }
  // Value i as a double (integers exactly up to 2^53).
  double at(uint64_t i) const {
    uint64_t bits = 0;  // the value's bytes in this machine's (little-endian) order
    std::memcpy(&bits, data.data() + i * item, item);
    if (swap) bits = __builtin_bswap64(bits) >> (64 - 8 * item);
    if (kind == 'f') {
      if (item == 8) return std::bit_cast<double>(bits);
      return std::bit_cast<float>(static_cast<uint32_t>(bits));
    }
    if (kind != 'i') return static_cast<double>(bits);
    const int unused = 64 - 8 * static_cast<int>(item);  // sign-extends from the value's top bit
    return static_cast<double>(static_cast<int64_t>(bits << unused) >> unused);
  }
};

// The header dict: 'descr', 'fortran_order' and 'shape', in any order, nothing else.
class HeaderParser {
 public:
  HeaderParser(std::string text, std::string origin)
      : text_(std::move(text)), origin_(std::move(origin)) {}

  void parse(NpyArray& array) {
    expect('{');
    bool descr = false, order = false, shape = false;
    while (skip_space(), peek() != '}') {
      const std::string key = quoted();
      expect(':');
      if (key == "descr") {
        parse_descr(quoted(), array);
        descr = true;
      } else if (key == "fortran_order") {
        if (word() != "False")
          fail(
              "Fortran order (column-major) is not supported; save a C-ordered array "
              "(np.ascontiguousarray)");
        order = true;
      } else if (key == "shape") {
        array.shape = tuple();
        shape = true;
      } else {
        fail("unknown header key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') ++at_;
    }
    if (!descr || !order || !shape) fail("header lacks descr, fortran_order or shape");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw DataError(origin_ + ": " + what); }
  void skip_space() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\n')) ++at_;
  }
  char peek() const {
    if (at_ >= text_.size()) fail("malformed header (it ends early)");
    return text_[at_];
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("malformed header (expected '") + c + "')");
    ++at_;
  }
  std::string quoted() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("malformed header (expected a quoted key or value)");
    const size_t end = text_.find(quote, at_ + 1);
    if (end == std::string::npos) fail("malformed header (an unterminated string)");
    std::string s = text_.substr(at_ + 1, end - at_ - 1);
    at_ = end + 1;
    return s;
  }
  std::string word() {
    skip_space();
    const size_t begin = at_;
    while (at_ < text_.size() && std::isalpha(static_cast<unsigned char>(text_[at_]))) ++at_;
    return text_.substr(begin, at_ - begin);
  }
  std::vector<int64_t> tuple() {
    expect('(');
    std::vector<int64_t> dims;
    while (skip_space(), peek() != ')') {
      const size_t begin = at_;
      int64_t d = 0;
      while (at_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[at_]))) {
        if (d > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("a dimension is too large");
        d = d * 10 + (text_[at_++] - '0');
      }
      if (at_ == begin) fail("malformed shape (expected a non-negative integer)");
      dims.push_back(d);
      skip_space();
      if (peek() == ',') ++at_;
    }
    ++at_;
    return dims;
  }
  void parse_descr(const std::string& descr, NpyArray& array) const {
    const auto bad = [&] {
      fail("dtype '" + descr + "' is not supported (floats f4/f8, integers i1-i8/u1-u8, b1)");
    };
    if (descr.size() < 3 || std::string("<>|=").find(descr[0]) == std::string::npos) bad();
    array.kind = descr[1];
    const std::string size = descr.substr(2);
    array.item = size == "1" ? 1 : size == "2" ? 2 : size == "4" ? 4 : size == "8" ? 8 : 0;
    const bool ok = (array.kind == 'f' && (array.item == 4 || array.item == 8)) ||
                    ((array.kind == 'i' || array.kind == 'u') && array.item > 0) ||
                    (array.kind == 'b' && array.item == 1);
    if (!ok) bad();
    static_assert(std::endian::native == std::endian::little, "big-endian hosts are not supported");
    array.swap = descr[0] == '>' && array.item > 1;
  }

  std::string text_;
  std::string origin_;
  size_t at_ = 0;
};

NpyArray parse_npy(std::span<const std::byte> bytes, const std::string& origin) {
  NpyArray array;
  array.origin = origin;
  const auto fail = [&origin](const std::string& what) { return DataError(origin + ": " + what); };
  static constexpr unsigned char kMagic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw fail("not a .npy file (no \\x93NUMPY magic)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3)
    throw fail("npy format version " + std::to_string(major) + " is not supported");
  const size_t prefix = major == 1 ? 10 : 12;
  if (bytes.size() < prefix) throw fail("truncated in the header");
  uint64_t header = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9])
                                                               << 8;
  if (major > 1)
    header |= uint64_t{static_cast<unsigned char>(bytes[10])} << 16 |
              uint64_t{static_cast<unsigned char>(bytes[11])} << 24;
  if (header > bytes.size() - prefix) throw fail("truncated in the header");
  HeaderParser(std::string(reinterpret_cast<const char*>(bytes.data()) + prefix, header), origin)
      .parse(array);
  // The shape's size in bytes, with every product checked: a shape may claim anything.
  const uint64_t have = bytes.size() - prefix - header;
  uint64_t count = 1, need = 0;
  bool overflow = false;
  for (const int64_t d : array.shape)
    overflow |= __builtin_mul_overflow(count, static_cast<uint64_t>(d), &count);
  overflow |= __builtin_mul_overflow(count, static_cast<uint64_t>(array.item), &need);
  const std::string sizes = (overflow ? std::string("more than 2^64") : std::to_string(need)) +
                            " bytes of data, the file has " + std::to_string(have);
  if (overflow || need > have) throw fail("truncated: the shape needs " + sizes);
  if (need < have) throw fail("trailing bytes: the shape needs " + sizes);
  array.data = bytes.subspan(prefix + header);
  return array;
}

std::vector<std::byte> read_member(zip_t* archive, const std::string& path,
                                   const std::string& member) {
  const auto fail = [&](const std::string& what) {
    return DataError(path + ": " + member + ": " + what);
  };
  const zip_int64_t index = zip_name_locate(archive, member.c_str(), 0);
  if (index < 0) throw fail("no such array in the archive");
  zip_stat_t stat;
  if (zip_stat_index(archive, static_cast<zip_uint64_t>(index), 0, &stat) != 0 ||
      !(stat.valid & ZIP_STAT_SIZE))
    throw fail(std::string("cannot read its size: ") + zip_strerror(archive));
  if (stat.size > memory_limit_bytes()) throw fail("does not fit in this process's memory");
  std::unique_ptr<zip_file_t, decltype(&zip_fclose)> file(
      zip_fopen_index(archive, static_cast<zip_uint64_t>(index), 0), &zip_fclose);
  if (!file) throw fail(std::string("cannot open: ") + zip_strerror(archive));
  std::vector<std::byte> bytes(static_cast<size_t>(stat.size));
  const zip_int64_t got = zip_fread(file.get(), bytes.data(), stat.size);
  if (got < 0 || static_cast<zip_uint64_t>(got) != stat.size)
    throw fail(std::string("damaged (") + zip_file_strerror(file.get()) + ")");
  return bytes;
}

// Features (N, ...) as the dataset's: read in place from `mapping` where it holds them as
// uint8 or as native float32 with no scale to apply (Note [mapped features]), converted to
// float32 otherwise.
void set_features(Dataset& data, const NpyArray& x, float scale,
                  std::shared_ptr<const MappedFile> mapping) {
  const bool bytes = x.kind == 'u' && x.item == 1;
  const bool floats = x.kind == 'f' && x.item == 4 && !x.swap && scale == 1;
  if (mapping && (bytes || floats)) {
    if (floats)
      for (uint64_t i = 0; i < x.count(); ++i)
        if (!std::isfinite(x.at(i)))
          throw DataError(x.origin + ": value " + std::to_string(i) + " is not finite");
    data.mapping = std::move(mapping);
    data.mapped = x.data;
    data.mapped_bytes = bytes;
    data.byte_scale = scale;
    return;
  }
  if (x.count() > memory_limit_bytes() / sizeof(float))
    throw DataError(x.origin + ": " + std::to_string(x.count()) +
                    " features as float32 do not fit in this process's memory");
  data.features.resize(static_cast<size_t>(x.count()));
  for (uint64_t i = 0; i < x.count(); ++i) {
    const auto v = static_cast<float>(x.at(i) * scale);
    if (!std::isfinite(v))
      throw DataError(x.origin + ": value " + std::to_string(i) + " is not finite" +
                      (std::isfinite(x.at(i)) ? " once scaled" : ""));
    data.features[i] = v;
  }
}

Dataset make_dataset(const NpyArray& x, const NpyArray& y, float scale,
                     std::shared_ptr<const MappedFile> mapping = nullptr) {
  if (x.shape.empty()) throw DataError(x.origin + ": a scalar, not an array of samples");
  if (y.shape.empty())
    throw DataError(y.origin + ": labels need shape (samples, ...), got a scalar");
  if (x.shape[0] != y.shape[0])
    throw DataError(x.origin + " has " + std::to_string(x.shape[0]) + " samples but " + y.origin +
                    " has " + std::to_string(y.shape[0]));
  // Keras' y of any rank, flattened per sample: (samples, steps) tags, or (samples, height,
  // width, channels) images as an autoencoder's targets.
  int64_t label_width = 1;
  for (size_t d = 1; d < y.shape.size(); ++d) label_width *= y.shape[d];
  if (label_width == 0) throw DataError(y.origin + ": 0 labels per sample");
  Dataset data;
  data.origin = y.origin;
  data.sample_shape = x.shape.size() == 1
                          ? Shape{1}
                          : Shape(std::vector<int64_t>(x.shape.begin() + 1, x.shape.end()));
  set_features(data, x, scale, std::move(mapping));
  data.label_width = label_width;
  if (y.kind == 'f') {  // real-valued targets: regression
    data.values.resize(static_cast<size_t>(y.count()));
    for (uint64_t i = 0; i < y.count(); ++i) {
      const auto v = static_cast<float>(y.at(i));
      if (!std::isfinite(v))
        throw DataError(y.origin + ": target value " + std::to_string(i) + " is not finite" +
                        (std::isfinite(y.at(i)) ? " as a float32" : ""));
      data.values[i] = v;
    }
    return data;
  }
  data.labels.resize(static_cast<size_t>(y.count()));
  for (uint64_t i = 0; i < y.count(); ++i) {
    const double v = y.at(i);
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
      throw DataError(y.origin + ": label " + std::to_string(v) + " at " + std::to_string(i) +
                      " does not fit 32 bits");
    data.labels[i] = static_cast<int32_t>(v);
  }
  return data;
}

}  // namespace

Dataset read_npy(const std::string& features_path, const std::string& labels_path, float scale) {
  auto x = std::make_shared<const MappedFile>(features_path);
  const std::vector<std::byte> y = read_whole_file<DataError>(labels_path);
  return make_dataset(parse_npy(x->bytes(), features_path), parse_npy(y, labels_path), scale, x);
}

std::vector<float> read_npy_sample_weights(const std::string& path, int64_t samples) {
  const std::vector<std::byte> bytes = read_whole_file<DataError>(path);
  const NpyArray w = parse_npy(bytes, path);
  if (w.shape.size() != 1)
    throw DataError(path + ": sample weights need shape (samples), got " +
                    std::to_string(w.shape.size()) + " dimensions");
  std::vector<float> weights(static_cast<size_t>(w.count()));
  for (uint64_t i = 0; i < w.count(); ++i) weights[i] = static_cast<float>(w.at(i));
  check_sample_weights(weights, samples, path);
  return weights;
}

Dataset read_npz(const std::string& path, const std::string& features, const std::string& labels,
                 float scale) {
  expect_regular_file<DataError>(path);
  int error = 0;
  std::unique_ptr<zip_t, decltype(&zip_discard)> archive(
      zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &error), &zip_discard);
  if (!archive) {
    zip_error_t e;
    zip_error_init_with_code(&e, error);
    const std::string why = zip_error_strerror(&e);
    zip_error_fini(&e);
    throw DataError(path + ": not a readable .npz (zip) archive: " + why);
  }
  const std::vector<std::byte> x = read_member(archive.get(), path, features + ".npy");
  const std::vector<std::byte> y = read_member(archive.get(), path, labels + ".npy");
  return make_dataset(parse_npy(x, path + ": " + features + ".npy"),
                      parse_npy(y, path + ": " + labels + ".npy"), scale);
}

}  // namespace ddp
