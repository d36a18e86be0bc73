// Topology arithmetic: the dp × cfg × sp layout, the split colours and keys, the one-line errors,
// and the Ulysses sequence padding.
#include "parallel/topology.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "core/error.h"

namespace wanbatch::parallel {
namespace {

std::string error_of(int world, int sp, bool cfg, int heads) {
  try {
    Topology::make(world, 0, sp, cfg, heads);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Topology, LaysOutSpGroupsOnConsecutiveRanks) {
  // 8 ranks, sp 2, cfg 2: dp 2. rank = (dp · 2 + cfg) · 2 + sp.
  for (int rank = 0; rank < 8; ++rank) {
    const Topology t = Topology::make(8, rank, 2, true, 40);
    EXPECT_EQ(t.sp, 2);
    EXPECT_EQ(t.cfg, 2);
    EXPECT_EQ(t.dp, 2);
    EXPECT_EQ(t.sp_index, rank % 2);
    EXPECT_EQ(t.cfg_index, (rank / 2) % 2);
    EXPECT_EQ(t.dp_index, rank / 4);
    EXPECT_EQ((t.dp_index * t.cfg + t.cfg_index) * t.sp + t.sp_index, rank);
  }
}

TEST(Topology, GroupColoursPartitionTheWorld) {
  for (const auto& [world, sp, cfg] : {std::tuple{12, 3, true}, std::tuple{8, 4, false},
                                       std::tuple{4, 1, true}, std::tuple{1, 1, false}}) {
    std::map<int, std::set<int>> sp_groups, cfg_groups, dp_groups;
    std::map<int, std::set<int>> sp_keys, cfg_keys, dp_keys;
    for (int rank = 0; rank < world; ++rank) {
      const Topology t = Topology::make(world, rank, sp, cfg, 0);
      sp_groups[t.sp_group().color].insert(rank);
      cfg_groups[t.cfg_group().color].insert(rank);
      dp_groups[t.dp_group().color].insert(rank);
      sp_keys[t.sp_group().color].insert(t.sp_group().key);
      cfg_keys[t.cfg_group().color].insert(t.cfg_group().key);
      dp_keys[t.dp_group().color].insert(t.dp_group().key);
      EXPECT_EQ(t.sp_group().key, t.sp_index);
      EXPECT_EQ(t.cfg_group().key, t.cfg_index);
      EXPECT_EQ(t.dp_group().key, t.dp_index);
    }
    const Topology t0 = Topology::make(world, 0, sp, cfg, 0);
    EXPECT_EQ(static_cast<int>(sp_groups.size()), world / t0.sp);
    EXPECT_EQ(static_cast<int>(cfg_groups.size()), world / t0.cfg);
    EXPECT_EQ(static_cast<int>(dp_groups.size()), world / t0.dp);
    for (const auto& [color, ranks] : sp_groups) {
      EXPECT_EQ(static_cast<int>(ranks.size()), t0.sp);
      EXPECT_EQ(*ranks.rbegin() - *ranks.begin(), t0.sp - 1) << "sp groups are consecutive";
      EXPECT_EQ(sp_keys[color].size(), ranks.size()) << "keys are distinct";
    }
    for (const auto& [color, ranks] : cfg_groups) {
      EXPECT_EQ(static_cast<int>(ranks.size()), t0.cfg);
      EXPECT_EQ(cfg_keys[color].size(), ranks.size());
    }
    for (const auto& [color, ranks] : dp_groups) {
      EXPECT_EQ(static_cast<int>(ranks.size()), t0.dp);
      EXPECT_EQ(dp_keys[color].size(), ranks.size());
    }
  }
}

TEST(Topology, RejectsWorldsThatDoNotFactor) {
  EXPECT_EQ(error_of(4, 3, false, 0), "4 ranks cannot be split into --ulysses 3");
  EXPECT_EQ(error_of(6, 2, true, 0),
            "6 ranks cannot be split into --ulysses 2 with --cfg-parallel (the world size must "
            "be a multiple of 4)");
  EXPECT_EQ(error_of(3, 1, true, 0),
            "3 ranks cannot be split into --ulysses 1 with --cfg-parallel (the world size must "
            "be a multiple of 2)");
  EXPECT_EQ(error_of(8, 4, true, 40), "");
}

TEST(Topology, RejectsHeadsThatDoNotDivide) {
  EXPECT_EQ(error_of(3, 3, false, 40),
            "--ulysses 3 does not divide the model's 40 attention heads");
  EXPECT_EQ(error_of(3, 3, false, 0), "") << "heads 0: not known yet, not checked";
  EXPECT_EQ(error_of(4, 4, false, 12), "");
}

TEST(Topology, RejectsArgumentsOutOfRange) {
  EXPECT_THROW(Topology::make(0, 0, 1, false, 0), Error);
  EXPECT_THROW(Topology::make(4, 4, 1, false, 0), Error);
  EXPECT_THROW(Topology::make(4, -1, 1, false, 0), Error);
  EXPECT_EQ(error_of(4, 0, false, 0), "--ulysses must be at least 1, not 0");
}

TEST(SequenceShard, PadsToAMultipleOfSpAndCoversTheSequence) {
  EXPECT_EQ(padded_length(10, 4), 12);
  EXPECT_EQ(padded_length(12, 4), 12);
  EXPECT_EQ(padded_length(0, 4), 0);
  EXPECT_EQ(padded_length(7, 1), 7);
  for (int64_t tokens : {0, 1, 5, 10, 12, 32760, 32761}) {
    for (int sp : {1, 2, 3, 4, 8}) {
      int64_t next = 0, valid = 0;
      for (int i = 0; i < sp; ++i) {
        const SequenceShard s = shard_sequence(tokens, sp, i);
        EXPECT_EQ(s.padded % sp, 0);
        EXPECT_LT(s.padded - tokens, sp);
        EXPECT_EQ(s.begin, next);
        EXPECT_EQ(s.end - s.begin, s.padded / sp);
        EXPECT_GE(s.valid, 0);
        next = s.end;
        valid += s.valid;
      }
      EXPECT_EQ(next, padded_length(tokens, sp));
      EXPECT_EQ(valid, tokens);
    }
  }
  // 10 tokens over 4 ranks: 3 each, the last rank holds token 9 and two padding tokens.
  const SequenceShard last = shard_sequence(10, 4, 3);
  EXPECT_EQ(last.begin, 9);
  EXPECT_EQ(last.end, 12);
  EXPECT_EQ(last.valid, 1);
  // 2 tokens over 4 ranks: the last two ranks hold only padding.
  EXPECT_EQ(shard_sequence(2, 4, 2).valid, 0);
  EXPECT_THROW(shard_sequence(10, 4, 4), Error);
  EXPECT_THROW(padded_length(10, 0), Error);
}

}  // namespace
}  // namespace wanbatch::parallel
