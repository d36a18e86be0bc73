// `mpirun -np 2 wanbatch run`: the two ranks share the items (round-robin) and produce latents
// bit-identical to a one-rank run of the same manifest, with one report.json from rank 0.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "io/latents_file.h"
#include "run_wanbatch.h"
#include "temp_dir_test.h"

namespace wanbatch {
namespace {

namespace fs = std::filesystem;
using testing::run_wanbatch;

class RunNp2 : public wanbatch::testing::TempDirTest {};

TEST_F(RunNp2, TwoRanksGiveTheLatentsOfOne) {
  const auto p = [&](const std::string& name) { return (dir_ / name).string(); };
  auto r = run_wanbatch("make-test-model --variant tiny-t2v --output " + p("model") + " --t5 " +
                        p("t5.safetensors") + " --tokenizer " + p("spiece.model"));
  ASSERT_EQ(r.status, 0) << r.output;
  {
    std::ofstream m(dir_ / "m.jsonl");
    m << R"({"id": "a", "prompt": "a red fox", "width": 32, "height": 32, "frames": 5, "steps": 3, "seed": 1})"
         "\n"
      << R"({"id": "b", "prompt": "waves on the beach", "width": 32, "height": 32, "frames": 5, "steps": 2, "solver": "euler"})"
         "\n"
      << R"({"id": "c", "prompt": "a paper boat", "width": 48, "height": 32, "frames": 1, "steps": 2, "solver": "dpm++", "seed": 7})"
         "\n";
  }
  const std::string args = "run --manifest " + p("m.jsonl") + " --dit " + p("model") + " --t5 " +
                           p("t5.safetensors") + " --tokenizer " + p("spiece.model") +
                           " --text-len 16 --no-video --output-dir ";
  r = run_wanbatch(args + p("one"));
  ASSERT_EQ(r.status, 0) << r.output;

  const std::string command = std::string(WANBATCH_MPIEXEC) +
                              " -np 2 --oversubscribe " WANBATCH_BINARY " " + args + p("two") +
                              " > " + p("np2.log") + " 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream log_file(p("np2.log"));
  const std::string log((std::istreambuf_iterator<char>(log_file)), {});
  ASSERT_EQ(status, 0) << log;

  std::ifstream in(dir_ / "two" / "report.json");
  const auto report = nlohmann::json::parse(in);
  EXPECT_EQ(report["world_size"], 2);
  EXPECT_EQ(report["totals"]["done"], 3);
  std::set<int> ranks;
  for (const auto& item : report["items"]) ranks.insert(item["rank"].get<int>());
  EXPECT_EQ(ranks, (std::set<int>{0, 1}));
  for (const std::string id : {"a", "b", "c"}) {
    const auto one = io::read_latents_file(p("one/" + id + ".h5"));
    const auto two = io::read_latents_file(p("two/" + id + ".h5"));
    EXPECT_EQ(two.record.world_size, 2);
    ASSERT_EQ(one.latents.shape(), two.latents.shape()) << id;
    EXPECT_EQ(
        std::memcmp(one.latents.data<float>(), two.latents.data<float>(), one.latents.nbytes()), 0)
        << id;
  }
}

}  // namespace
}  // namespace wanbatch
