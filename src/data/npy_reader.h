#pragma once
// NumPy arrays as datasets: .npy files (np.save) and .npz archives of them (np.savez, also
// compressed).
//
// Note [npy format]: a .npy file is the magic "\x93NUMPY", a version (1.0: u16 header length;
// 2.0 and 3.0: u32), a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N,
// ...)} padded with spaces to a 16-byte boundary, then the raw values. The reader accepts
// little- and big-endian floats (f4, f8) and integers (1, 2, 4, 8 bytes, signed or unsigned, and
// b1) in C order, and refuses Fortran order, other dtypes, a malformed header, and data that is
// shorter or longer than the shape, naming the file (and the .npz member).

#include <string>
#include <vector>

#include "data/dataset.h"

namespace ddp {

// Features (N, ...) of any numeric dtype, times `scale` (1/255 for uint8 images); integer labels
// (N) (a class index each) or (N, L) (L 0/1 labels each). Throws DataError naming the file.
Dataset read_npy(const std::string& features_path, const std::string& labels_path, float scale);
// Note [sample weights] from a .npy file: one number per sample, (samples), of any numeric dtype,
// as float32. Throws DataError naming the file for another shape or a weight that
// check_sample_weights refuses.
std::vector<float> read_npy_sample_weights(const std::string& path, int64_t samples);
// The same from the members `features`.npy and `labels`.npy of an .npz archive.
Dataset read_npz(const std::string& path, const std::string& features, const std::string& labels,
                 float scale);

}  // namespace ddp
