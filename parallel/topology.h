// Topology: how the ranks of a job divide into world = dp × cfg × sp (DESIGN.md "Parallelism").
// sp (--ulysses N) ranks share one sequence, cfg (2 with --cfg-parallel) ranks split the
// conditional and unconditional passes, and dp groups of those work on different manifest items.
// Ranks are laid out rank = (dp_index · cfg + cfg_index) · sp + sp_index, so an sp group is
// consecutive ranks (the closest ones: same node, NVLink). Pure arithmetic: no MPI here.
#pragma once

#include <cstdint>

namespace wanbatch::parallel {

// The arguments of Comm::split that form one kind of group.
struct SplitKey {
  int color = 0;
  int key = 0;
};

struct Topology {
  int world_size = 1;
  int rank = 0;
  int sp = 1;   // --ulysses
  int cfg = 1;  // 2 with --cfg-parallel
  int dp = 1;   // what is left
  int sp_index = 0;
  int cfg_index = 0;
  int dp_index = 0;

  // Throws wanbatch::Error with a one-line reason when the world does not factor, sp does not
  // divide the heads (num_heads 0: not known yet, not checked) or an argument is out of range.
  static Topology make(int world_size, int rank, int sp, bool cfg_parallel, int num_heads);

  // Ranks sharing a sequence (consecutive ranks), ordered by sp_index.
  SplitKey sp_group() const { return {dp_index * cfg + cfg_index, sp_index}; }
  // The conditional/unconditional pair (or single rank) of one sp position, ordered by cfg_index.
  SplitKey cfg_group() const { return {dp_index * sp + sp_index, cfg_index}; }
  // The cfg × sp ranks of one dp group, which work on one item together; its rank 0 is the group
  // leader (cfg_index 0, sp_index 0).
  SplitKey item_group() const { return {dp_index, cfg_index * sp + sp_index}; }
  bool leader() const { return cfg_index == 0 && sp_index == 0; }
  // Ranks with the same cfg and sp position in every dp replica, ordered by dp_index.
  SplitKey dp_group() const { return {cfg_index * sp + sp_index, dp_index}; }
};

// One sp rank's share of a sequence of `tokens` tokens, padded up to a multiple of sp so every rank
// holds the same number; tokens at or past `tokens` are padding and must be masked.
struct SequenceShard {
  int64_t padded = 0;  // tokens rounded up to a multiple of sp
  int64_t begin = 0;   // this rank's global token range [begin, end) in the padded sequence
  int64_t end = 0;
  int64_t valid = 0;  // how many of those are real tokens (the rest, at the end, are padding)
};

int64_t padded_length(int64_t tokens, int sp);
SequenceShard shard_sequence(int64_t tokens, int sp, int sp_index);

}  // namespace wanbatch::parallel
