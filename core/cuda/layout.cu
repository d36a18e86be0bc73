// CUDA kernels of the data-movement ops permute and copy_slice. Both move elements as raw bytes,
// so any dtype works (f32, bf16, f16, fp8, i32, i64). Before launching, each op reduces its
// problem to the fewest dimensions and the widest aligned word (up to 16 bytes) that describe it:
// permute drops size-1 axes and merges axes that stay adjacent, so [L, H, D] → [H, L, D] moves
// whole D-rows; copy_slice is one memcpy when the slice is contiguous and otherwise a strided copy
// of equal rows.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/ops.h"
#include "core/cuda/resources.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {

constexpr int kMaxDims = 8;

// Output extents and, per output axis, the input stride (in words) it walks.
template <typename I>
struct PermuteArgs {
  I extent[kMaxDims];
  I stride[kMaxDims];
  int ndim;
};

// One output word per iteration: writes are coalesced; the reads follow the permutation.
// I is uint32_t when every index fits in 31 bits (cheaper divisions), int64_t otherwise.
template <typename W, typename I>
__global__ void permute_kernel(const W* in, W* out, PermuteArgs<I> a, I total) {
  const I step = static_cast<I>(blockDim.x) * gridDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    I rest = i, src = 0;
    for (int d = a.ndim - 1; d > 0; --d) {
      const I q = rest / a.extent[d];
      src += (rest - q * a.extent[d]) * a.stride[d];
      rest = q;
    }
    src += rest * a.stride[0];
    out[i] = in[src];
  }
}

// dst row r, word c ← src row r, word c, for `rows` rows of `row_words` words.
template <typename W>
__global__ void copy_rows_kernel(const W* src, W* dst, int64_t rows, int64_t row_words,
                                 int64_t src_pitch, int64_t dst_pitch) {
  const int64_t total = rows * row_words;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += step) {
    const int64_t r = i / row_words, c = i - r * row_words;
    dst[r * dst_pitch + c] = src[r * src_pitch + c];
  }
}

// The widest word (16, 8, 4, 2 or 1 bytes) dividing every value given: byte counts and addresses.
int64_t word_bytes(std::initializer_list<uint64_t> values) {
  for (int64_t w = 16; w > 1; w /= 2) {
    bool ok = true;
    for (uint64_t v : values) ok = ok && v % static_cast<uint64_t>(w) == 0;
    if (ok) return w;
  }
  return 1;
}

// Calls f with a value of the unsigned type `bytes` wide (uint4 for 16).
template <typename F>
void with_word(int64_t bytes, F&& f) {
  switch (bytes) {
    case 16:
      return f(uint4{});
    case 8:
      return f(uint64_t{});
    case 4:
      return f(uint32_t{});
    case 2:
      return f(uint16_t{});
    default:
      return f(uint8_t{});
  }
}

template <typename W, typename I>
void launch_permute(const Resources& r, const void* in, void* out, const std::vector<int64_t>& ext,
                    const std::vector<int64_t>& stride, int64_t total) {
  PermuteArgs<I> a{};
  a.ndim = static_cast<int>(ext.size());
  for (int d = 0; d < a.ndim; ++d) {
    a.extent[d] = static_cast<I>(ext[d]);
    a.stride[d] = static_cast<I>(stride[d]);
  }
  permute_kernel<W, I><<<grid_blocks(total, r.sm_count()), kThreadsPerBlock, 0, r.stream()>>>(
      static_cast<const W*>(in), static_cast<W*>(out), a, static_cast<I>(total));
  CUDA_CHECK_LAUNCH("permute_kernel");
}

}  // namespace

void permute(const Context& ctx, const Tensor& x, const std::vector<int>& perm, Tensor& out) {
  const int64_t total_elements = x.numel();
  if (total_elements == 0) return;
  const int n = x.ndim();
  const int64_t element = static_cast<int64_t>(dtype_size(x.dtype()));

  // Input axes of size > 1, renumbered; the permutation restricted to them.
  std::vector<int> new_index(n, -1);
  std::vector<int64_t> in_shape;
  for (int d = 0; d < n; ++d) {
    if (x.dim(d) == 1) continue;
    new_index[d] = static_cast<int>(in_shape.size());
    in_shape.push_back(x.dim(d));
  }
  std::vector<int> p;
  for (int d = 0; d < n; ++d) {
    if (new_index[perm[d]] >= 0) p.push_back(new_index[perm[d]]);
  }
  // Runs of output axes that are consecutive input axes become one axis: `groups` lists, in output
  // order, each run's first input axis and length.
  struct Group {
    int first, count;
  };
  std::vector<Group> groups;
  for (size_t d = 0; d < p.size(); ++d) {
    if (!groups.empty() && groups.back().first + groups.back().count == p[d]) {
      ++groups.back().count;
    } else {
      groups.push_back({p[d], 1});
    }
  }
  // Each group's extent, and its stride in the input, where the groups lie in order of first axis.
  const int m = static_cast<int>(groups.size());
  std::vector<int64_t> merged_extent(m), in_stride(m);
  {
    std::vector<int> order(m);
    for (int g = 0; g < m; ++g) order[g] = g;
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return groups[a].first < groups[b].first; });
    for (int g = 0; g < m; ++g) {
      int64_t e = 1;
      for (int i = 0; i < groups[g].count; ++i) e *= in_shape[groups[g].first + i];
      merged_extent[g] = e;
    }
    int64_t s = 1;  // in elements
    for (int k = m - 1; k >= 0; --k) {
      in_stride[order[k]] = s;
      s *= merged_extent[order[k]];
    }
  }

  const Resources& r = resources_of(ctx, "permute");
  DeviceGuard guard(r.device());
  if (m <= 1) {  // the identity after merging: a plain copy
    CUDA_CHECK(cudaMemcpyAsync(out.raw(), x.raw(), static_cast<size_t>(total_elements * element),
                               cudaMemcpyDeviceToDevice, r.stream()));
    return;
  }

  // When the innermost output axis is the innermost input axis, its runs are contiguous on both
  // sides and move as wide words; the other strides are multiples of the run, so they divide.
  std::vector<int64_t> extent = merged_extent;
  std::vector<int64_t> stride = in_stride;
  int64_t word = element;
  if (stride[m - 1] == 1) {
    const int64_t run_bytes = extent[m - 1] * element;
    word = word_bytes({static_cast<uint64_t>(run_bytes), reinterpret_cast<uintptr_t>(x.raw()),
                       reinterpret_cast<uintptr_t>(out.raw())});
    extent[m - 1] = run_bytes / word;
    for (int d = 0; d < m - 1; ++d) stride[d] = stride[d] * element / word;
  }
  const int64_t total = total_elements * element / word;
  const bool narrow = total < (int64_t{1} << 31);
  with_word(word, [&](auto w) {
    using W = decltype(w);
    if (narrow) {
      launch_permute<W, uint32_t>(r, x.raw(), out.raw(), extent, stride, total);
    } else {
      launch_permute<W, int64_t>(r, x.raw(), out.raw(), extent, stride, total);
    }
  });
}

void copy_slice(const Context& ctx, const Tensor& src, int dim, int64_t src_begin, Tensor& dst,
                int64_t dst_begin, int64_t count) {
  const int64_t element = static_cast<int64_t>(dtype_size(src.dtype()));
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < dim; ++i) outer *= src.dim(i);
  for (int i = dim + 1; i < src.ndim(); ++i) inner *= src.dim(i);
  if (outer == 0 || inner == 0 || count == 0) return;
  const int64_t row_bytes = count * inner * element;
  const int64_t src_pitch = src.dim(dim) * inner * element;
  const int64_t dst_pitch = dst.dim(dim) * inner * element;
  const char* from = static_cast<const char*>(src.raw()) + src_begin * inner * element;
  char* to = static_cast<char*>(dst.raw()) + dst_begin * inner * element;

  const Resources& r = resources_of(ctx, "copy_slice");
  DeviceGuard guard(r.device());
  if (outer == 1 || (row_bytes == src_pitch && row_bytes == dst_pitch)) {  // one contiguous block
    CUDA_CHECK(cudaMemcpyAsync(to, from, static_cast<size_t>(outer * row_bytes),
                               cudaMemcpyDeviceToDevice, r.stream()));
    return;
  }
  const int64_t word =
      word_bytes({static_cast<uint64_t>(row_bytes), static_cast<uint64_t>(src_pitch),
                  static_cast<uint64_t>(dst_pitch), reinterpret_cast<uintptr_t>(from),
                  reinterpret_cast<uintptr_t>(to)});
  const int64_t row_words = row_bytes / word;
  with_word(word, [&](auto w) {
    using W = decltype(w);
    copy_rows_kernel<W>
        <<<grid_blocks(outer * row_words, r.sm_count()), kThreadsPerBlock, 0, r.stream()>>>(
            reinterpret_cast<const W*>(from), reinterpret_cast<W*>(to), outer, row_words,
            src_pitch / word, dst_pitch / word);
  });
  CUDA_CHECK_LAUNCH("copy_rows_kernel");
}

}  // namespace wanbatch::core::cuda
