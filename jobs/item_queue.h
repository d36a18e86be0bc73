// The dynamic item queue of a run (DESIGN.md "jobs"): the leader of each dp group asks rank 0 for
// the next item when its group is free, reporting the item it finished; rank 0 hands the shard's
// pending items out in manifest order as groups ask, so uneven items balance over the groups. Rank
// 0 also keeps the run report: each hand-out and each result is recorded and report.json rewritten
// at once, with a progress line and the batch's ETA. Requests travel over a RequestChannel.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "core/clock.h"
#include "jobs/run_report.h"
#include "parallel/request_channel.h"

namespace wanbatch::jobs {

class ItemQueue {
 public:
  using Clock = core::Clock;

  // Collective over the world. `leaders` ranks lead a dp group; this rank leads group `group` when
  // `leader`. On rank 0, `report` is the run's (complete items already recorded as skipped) and
  // `pending` the shard indices still to do; both are ignored on the other ranks. `report` must
  // outlive the queue.
  ItemQueue(const parallel::MpiRuntime& runtime, int leaders, bool leader, int group,
            RunReport* report, std::vector<size_t> pending, Clock::time_point start);

  // Leader only: records `finished` (when not null) and returns the next item for this group, or
  // nullopt when none is left (the group then stops asking).
  std::optional<size_t> next(const ItemResult* finished);

 private:
  std::string handle(int rank, const std::string& request);

  int group_ = 0;
  int rank_ = 0;
  // Rank 0's state, touched only by the channel's service thread once the queue runs.
  RunReport* report_ = nullptr;
  std::vector<size_t> pending_;
  size_t next_pending_ = 0;
  size_t finished_ = 0;
  Clock::time_point start_;
  parallel::RequestChannel channel_;
};

}  // namespace wanbatch::jobs
