// HDF5 files for the `wanbatch tool` inputs and outputs and the per-item latents (DESIGN.md,
// "Command line" and "Data"): named datasets of f32 or int64 at the root (or in groups, "a/b"),
// and root-group attributes as plain strings and numbers, so h5py and h5dump read them directly.
// Written to a temporary name and renamed on commit, like every other output. HDF5 prints nothing
// itself; every failure is a wanbatch::Error naming the file and the dataset or attribute.
//
// The serial HDF5 library is not thread-safe; these wrappers serialize their own HDF5 calls with
// one process-wide lock, so readers and writers may be used from several threads.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace wanbatch::io {

namespace hdf5_detail {
template <typename T>
concept OtherInteger = std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, int64_t>;
}  // namespace hdf5_detail

class Hdf5Reader {
 public:
  // Opens read-only; throws naming the file if it is missing or not HDF5.
  static Hdf5Reader open(const std::string& path);
  ~Hdf5Reader();
  Hdf5Reader(Hdf5Reader&&) noexcept;
  Hdf5Reader& operator=(Hdf5Reader&&) noexcept;

  const std::string& path() const;
  // Names of the root group's members (datasets and groups), sorted.
  std::vector<std::string> names() const;
  // Whether `name` (a path like "latents" or "a/b") is a dataset.
  bool has(const std::string& name) const;
  // The dataset's dimensions; {} for an HDF5 scalar dataset.
  core::Shape shape(const std::string& name) const;
  // The whole dataset as a host tensor: floating point (f16, f32, f64) → f32, signed 32/64-bit
  // integers → i64. Other types throw, naming the type.
  core::Tensor read(const std::string& name) const;
  // A floating-point dataset as f32 with `rank` dimensions, also accepting a leading batch
  // dimension of 1 (what a PyTorch dump usually has); throws naming the file and dataset otherwise.
  core::Tensor read_f32(const std::string& name, int rank) const;

  // Root-group attributes: nullopt when absent; throws when present with the wrong kind (a number
  // asked for as a string, say) or more than one element. Strings may be fixed- or variable-length.
  std::optional<std::string> attribute_string(const std::string& name) const;
  std::optional<double> attribute_number(const std::string& name) const;
  // Exact for integer attributes beyond 2^53 (seeds); a floating-point attribute is accepted only
  // when it holds a whole number.
  std::optional<int64_t> attribute_integer(const std::string& name) const;
  // Any non-negative integer attribute up to 2^64 − 1 (seeds); negative or fractional values throw.
  std::optional<uint64_t> attribute_unsigned(const std::string& name) const;

 private:
  struct Impl;
  explicit Hdf5Reader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Hdf5Writer {
 public:
  // Creates "<dir>/.<name>.tmp.<pid>" (io::AtomicFile); nothing appears at `path` until commit().
  explicit Hdf5Writer(const std::string& path);
  ~Hdf5Writer();  // without commit(), closes and removes the temporary file
  Hdf5Writer(Hdf5Writer&&) noexcept;
  Hdf5Writer& operator=(Hdf5Writer&&) noexcept;

  const std::string& path() const;
  // Writes a dataset (intermediate groups of "a/b" are created). Floating tensors of any dtype are
  // stored as float32, i32/i64 as int64; device tensors are copied to the host. Non-empty arrays
  // are chunked: trailing dimensions whole, the leading one split so a chunk stays within 1 MiB.
  // A 0-d tensor becomes an HDF5 scalar dataset. Writing a name twice throws.
  void write(const std::string& name, const core::Tensor& tensor);

  // Root-group attributes, replacing any earlier value of the same name. Strings are scalar
  // variable-length UTF-8 (h5py reads str), doubles IEEE float64, integers int64.
  void attribute(const std::string& name, const std::string& value);
  void attribute(const std::string& name, const char* value) {
    attribute(name, std::string(value));
  }
  void attribute(const std::string& name, double value);
  void attribute(const std::string& name, int64_t value);
  // Stored as uint64 (h5py reads numpy.uint64): for 64-bit seeds, which can exceed int64.
  void attribute_unsigned(const std::string& name, uint64_t value);
  // Any other integer type (int, uint64_t, ...) as int64; without this, `attribute("steps", 50)`
  // would be ambiguous between double and int64_t. Throws if the value does not fit.
  template <hdf5_detail::OtherInteger T>
  void attribute(const std::string& name, T value) {
    attribute_integral(name, std::in_range<int64_t>(value), static_cast<int64_t>(value));
  }

  // Flushes, closes and renames onto path(); the writer takes no more writes afterwards.
  void commit();

 private:
  void attribute_integral(const std::string& name, bool fits, int64_t value);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wanbatch::io
