// Which part of the manifest one job of a set works on: `--shard I/N` or a SLURM job array
// (`sbatch --array=...`). The manifest is split into N contiguous ranges in file order, the first
// (items mod N) ranges one item longer: shard I of N gets items [I·b + min(I, r), ... + b + (I <
// r)) with b = items / N, r = items mod N. Every item is in exactly one shard; a shard may be empty
// when there are fewer items than shards. Contiguous ranges keep each shard's outputs together and
// make "which job did line L" a division.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "jobs/manifest.h"

namespace wanbatch::jobs {

struct Shard {
  int64_t index = 0;  // 0-based, below count
  int64_t count = 1;
  bool operator==(const Shard&) const = default;
};

// "I/N" with 0 ≤ I < N (0-based, as SLURM arrays usually are); throws naming the text otherwise.
Shard parse_shard(const std::string& text);

// Looks a variable up; returns nullptr when it is not set. std::getenv by default.
using EnvLookup = std::function<const char*(const char*)>;

// From a SLURM job array: SLURM_ARRAY_TASK_COUNT shards, this one at
// (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP (MIN 0 and STEP 1 when
// unset), so `--array=0-7`, `--array=1-8` and `--array=0-14:2` all give shards 0..7 of 8. Arrays
// given as a list with gaps (`--array=1,5,7`) cannot be mapped and are rejected. nullopt when
// SLURM_ARRAY_TASK_ID is not set; throws naming the variable when a value is malformed.
std::optional<Shard> shard_from_slurm(const EnvLookup& env = {});

// `--shard` when given (it wins over the environment), else the SLURM array, else the whole
// manifest (0/1).
Shard resolve_shard(const std::optional<std::string>& shard_option, const EnvLookup& env = {});

struct ItemRange {
  size_t begin = 0, end = 0;  // [begin, end) into the manifest's items
};

// The contiguous range of `item_count` items shard `shard` gets (see the top of this file).
ItemRange shard_range(size_t item_count, const Shard& shard);

// The items of `items` in shard `shard`, in manifest order.
std::vector<ManifestItem> shard_items(const std::vector<ManifestItem>& items, const Shard& shard);

}  // namespace wanbatch::jobs
