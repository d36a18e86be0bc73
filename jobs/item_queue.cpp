#include "jobs/item_queue.h"

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "parallel/mpi_runtime.h"

namespace wanbatch::jobs {
namespace {

using json = nlohmann::json;

json result_json(const ItemResult& r) {
  return {{"id", r.id},
          {"index", r.index},
          {"status", r.status},
          {"reason", r.reason},
          {"seconds", {r.encode_seconds, r.sample_seconds, r.decode_seconds, r.total_seconds}},
          {"latents", r.latents},
          {"video", r.video},
          {"rank", r.rank},
          {"group", r.group},
          {"memory",
           {r.memory_of, r.weights_gib, r.peak_gib, r.weight_buffers_gib, r.host_weights_gib,
            r.activations_gib}},
          {"size", {r.width, r.height}}};
}

ItemResult result_from_json(const json& j) {
  ItemResult r;
  r.id = j.at("id").get<std::string>();
  r.index = j.at("index").get<size_t>();
  r.status = j.at("status").get<std::string>();
  r.reason = j.at("reason").get<std::string>();
  const json& s = j.at("seconds");
  r.encode_seconds = s.at(0).get<double>();
  r.sample_seconds = s.at(1).get<double>();
  r.decode_seconds = s.at(2).get<double>();
  r.total_seconds = s.at(3).get<double>();
  r.latents = j.at("latents").get<std::string>();
  r.video = j.at("video").get<std::string>();
  r.rank = j.at("rank").get<int>();
  r.group = j.at("group").get<int>();
  const json& memory = j.at("memory");
  r.memory_of = memory.at(0).get<std::string>();
  r.weights_gib = memory.at(1).get<double>();
  r.peak_gib = memory.at(2).get<double>();
  r.weight_buffers_gib = memory.at(3).get<double>();
  r.host_weights_gib = memory.at(4).get<double>();
  r.activations_gib = memory.at(5).get<double>();
  r.width = j.at("size").at(0).get<int64_t>();
  r.height = j.at("size").at(1).get<int64_t>();
  return r;
}

using core::seconds_since;

}  // namespace

ItemQueue::ItemQueue(const parallel::MpiRuntime& runtime, int leaders, bool leader, int group,
                     RunReport* report, std::vector<size_t> pending, Clock::time_point start)
    : group_(group),
      rank_(runtime.rank()),
      report_(report),
      pending_(std::move(pending)),
      start_(start),
      channel_(runtime, leaders, leader,
               [this](int rank, const std::string& request) { return handle(rank, request); }) {
  WB_CHECK(rank_ != 0 || report_ != nullptr, "the item queue needs the report on rank 0");
}

std::optional<size_t> ItemQueue::next(const ItemResult* finished) {
  json request = {{"group", group_}};
  if (finished) request["finished"] = result_json(*finished);
  const json reply = json::parse(channel_.request(request.dump()));
  if (reply.at("item").is_null()) {
    channel_.close();
    return std::nullopt;
  }
  return reply.at("item").get<size_t>();
}

// Rank 0's service thread: record the finished item, hand out the next one, rewrite the report.
std::string ItemQueue::handle(int rank, const std::string& request) {
  const json j = json::parse(request);
  const int group = j.at("group").get<int>();
  if (j.contains("finished")) {
    const ItemResult r = result_from_json(j.at("finished"));
    report_->record(r);
    ++finished_;
    const ReportTotals t = report_->totals();
    const double elapsed = seconds_since(start_);
    const auto left = static_cast<double>(t.pending + t.running);
    const double eta = elapsed / static_cast<double>(finished_) * left;
    WB_LOG(info) << "[" << t.done + t.failed + t.skipped_complete << "/" << t.items << "] " << r.id
                 << ": " << r.status << " in " << r.total_seconds << " s by group " << r.group
                 << " (elapsed " << elapsed << " s, ETA " << eta << " s)"
                 << (r.status == "failed" ? ": " + r.reason : std::string());
  }
  json reply = {{"item", nullptr}};
  if (next_pending_ < pending_.size()) {
    const size_t index = pending_[next_pending_++];
    ItemResult running = report_->item(index);
    running.status = "running";
    running.rank = rank;
    running.group = group;
    report_->record(running);
    reply["item"] = index;
  }
  report_->write(seconds_since(start_));
  return reply.dump();
}

}  // namespace wanbatch::jobs
