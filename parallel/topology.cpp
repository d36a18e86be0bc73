#include "parallel/topology.h"

#include <algorithm>

#include "core/error.h"

namespace wanbatch::parallel {

Topology Topology::make(int world_size, int rank, int sp, bool cfg_parallel, int num_heads) {
  WB_CHECK(world_size >= 1, "the world size must be at least 1, not ", world_size);
  WB_CHECK(rank >= 0 && rank < world_size, "rank ", rank, " is not in a world of ", world_size);
  WB_CHECK(sp >= 1, "--ulysses must be at least 1, not ", sp);
  WB_CHECK(num_heads >= 0, "the head count must not be negative, not ", num_heads);
  Topology t;
  t.world_size = world_size;
  t.rank = rank;
  t.sp = sp;
  t.cfg = cfg_parallel ? 2 : 1;
  const int group = t.sp * t.cfg;
  if (world_size % group != 0) {
    if (cfg_parallel) {
      throw make_error(world_size, " ranks cannot be split into --ulysses ", sp,
                       " with --cfg-parallel (the world size must be a multiple of ", group, ")");
    }
    throw make_error(world_size, " ranks cannot be split into --ulysses ", sp);
  }
  if (num_heads > 0 && num_heads % sp != 0) {
    throw make_error("--ulysses ", sp, " does not divide the model's ", num_heads,
                     " attention heads");
  }
  t.dp = world_size / group;
  t.sp_index = rank % t.sp;
  t.cfg_index = (rank / t.sp) % t.cfg;
  t.dp_index = rank / group;
  return t;
}

int64_t padded_length(int64_t tokens, int sp) {
  WB_CHECK(sp >= 1, "sequence padding: sp must be at least 1, not ", sp);
  WB_CHECK(tokens >= 0, "sequence padding: negative token count ", tokens);
  return (tokens + sp - 1) / sp * sp;
}

SequenceShard shard_sequence(int64_t tokens, int sp, int sp_index) {
  WB_CHECK(sp_index >= 0 && sp_index < sp, "sequence shard: index ", sp_index,
           " is not in an sp group of ", sp);
  SequenceShard s;
  s.padded = padded_length(tokens, sp);
  const int64_t per_rank = s.padded / sp;
  s.begin = per_rank * sp_index;
  s.end = s.begin + per_rank;
  s.valid = std::clamp<int64_t>(tokens - s.begin, 0, per_rank);
  return s;
}

}  // namespace wanbatch::parallel
