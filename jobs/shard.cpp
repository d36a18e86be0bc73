#include "jobs/shard.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "core/error.h"

namespace wanbatch::jobs {
namespace {

// A whole non-negative decimal number, nothing around it.
std::optional<int64_t> parse_count(std::string_view text) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < 0)
    return std::nullopt;
  return value;
}

const char* lookup(const EnvLookup& env, const char* name) {
  return env ? env(name) : std::getenv(name);
}

std::optional<int64_t> env_number(const EnvLookup& env, const char* name) {
  const char* value = lookup(env, name);
  if (!value) return std::nullopt;
  const auto number = parse_count(value);
  if (!number)
    throw make_error("SLURM array: ", name, "=\"", value, "\" is not a non-negative integer");
  return number;
}

}  // namespace

Shard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  const auto index = slash == std::string::npos
                         ? std::nullopt
                         : parse_count(std::string_view(text).substr(0, slash));
  const auto count = slash == std::string::npos
                         ? std::nullopt
                         : parse_count(std::string_view(text).substr(slash + 1));
  if (!index || !count)
    throw make_error("--shard \"", text, "\": expected I/N, two whole numbers (e.g. 0/4)");
  if (*count < 1) throw make_error("--shard \"", text, "\": the shard count must be at least 1");
  if (*index >= *count)
    throw make_error("--shard \"", text, "\": index ", *index, " is not below the count ", *count,
                     " (indices are 0-based: 0/", *count, " … ", *count - 1, "/", *count, ")");
  return {*index, *count};
}

std::optional<Shard> shard_from_slurm(const EnvLookup& env) {
  const auto id = env_number(env, "SLURM_ARRAY_TASK_ID");
  if (!id) return std::nullopt;
  const auto count = env_number(env, "SLURM_ARRAY_TASK_COUNT");
  if (!count)
    throw make_error("SLURM array: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
  if (*count < 1) throw make_error("SLURM array: SLURM_ARRAY_TASK_COUNT is 0");
  const int64_t min = env_number(env, "SLURM_ARRAY_TASK_MIN").value_or(0);
  const int64_t step = env_number(env, "SLURM_ARRAY_TASK_STEP").value_or(1);
  if (step < 1) throw make_error("SLURM array: SLURM_ARRAY_TASK_STEP is 0");
  if (*id < min)
    throw make_error("SLURM array: SLURM_ARRAY_TASK_ID ", *id, " is below SLURM_ARRAY_TASK_MIN ",
                     min);
  const int64_t offset = *id - min;
  if (offset % step != 0 || offset / step >= *count)
    throw make_error("SLURM array: task ", *id, " is not one of ", *count, " evenly spaced tasks ",
                     min, ", ", min + step, ", … (min ", min, ", step ", step,
                     "); use --array=A-B[:S] without gaps, or --shard I/N");
  return Shard{offset / step, *count};
}

Shard resolve_shard(const std::optional<std::string>& shard_option, const EnvLookup& env) {
  if (shard_option) return parse_shard(*shard_option);
  if (auto slurm = shard_from_slurm(env)) return *slurm;
  return {};
}

ItemRange shard_range(size_t item_count, const Shard& shard) {
  WB_CHECK(shard.count >= 1 && shard.index >= 0 && shard.index < shard.count, "shard ", shard.index,
           "/", shard.count, " is not a valid shard");
  const size_t count = static_cast<size_t>(shard.count), index = static_cast<size_t>(shard.index);
  const size_t base = item_count / count, extra = item_count % count;
  const size_t begin = index * base + std::min(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

std::vector<ManifestItem> shard_items(const std::vector<ManifestItem>& items, const Shard& shard) {
  const ItemRange range = shard_range(items.size(), shard);
  return {items.begin() + static_cast<std::ptrdiff_t>(range.begin),
          items.begin() + static_cast<std::ptrdiff_t>(range.end)};
}

}  // namespace wanbatch::jobs
