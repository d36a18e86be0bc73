// One sampling-loop reference case (tests/reference/sampling_reference.py's
// sampling_loop_<name>.safetensors): the experts it names, loaded on a context, and the
// SamplerOptions and SampleConditions its metadata and tensors give. Shared by the CPU and GPU
// sampling tests so that both run exactly the loop the reference ran. Header-only.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/context.h"
#include "core/dtype.h"
#include "fixture_path.h"
#include "io/safetensors.h"
#include "model/sampling/sampler.h"
#include "model/wan/dit.h"
#include "model/wan/dit_loader.h"

namespace wanbatch::testing {

struct SamplingCase {
  // Loads sampling_loop_<name>.safetensors and its experts on ctx with GEMMs in gemm_dtype (unset:
  // the loader's default for the device).
  SamplingCase(const std::string& name, const core::Context& ctx,
               std::optional<core::DType> gemm_dtype = std::nullopt)
      : file(io::SafetensorsFile::open(fixture_path("sampling_loop_" + name + ".safetensors"))),
        low(load_expert("low_weights", ctx, gemm_dtype)) {
    const std::map<std::string, std::string>& meta = file->metadata();
    if (!meta.at("high_weights").empty()) {
      high.emplace(load_expert("high_weights", ctx, gemm_dtype));
    }
    options.solver = model::sampling::parse_solver(meta.at("solver"));
    options.steps = std::stoi(meta.at("steps"));
    options.shift = std::stod(meta.at("shift"));
    options.guide_scale = std::stod(meta.at("guide_low"));
    options.guide_scale_high = std::stod(meta.at("guide_high"));
    if (!meta.at("boundary").empty()) options.boundary = std::stod(meta.at("boundary"));
    conditions.context = file->tensor("context");
    conditions.context_null = file->tensor("context_null");
    if (file->contains("y")) conditions.y = file->tensor("y");  // I2V
    if (file->contains("first_frame"))
      conditions.first_frame = file->tensor("first_frame");  // TI2V
  }

  // The whole loop from the case's noise, on ctx (the context the experts were loaded on).
  model::sampling::SampleResult sample(const core::Context& ctx) {
    return model::sampling::sample(ctx, {&low, high ? &*high : nullptr}, options,
                                   file->tensor("noise"), conditions);
  }

  std::shared_ptr<io::SafetensorsFile> file;  // also holds the reference's results
  model::wan::WanDit low;
  std::optional<model::wan::WanDit> high;  // the high-noise expert, when the case has one
  model::sampling::SamplerOptions options;
  model::sampling::SampleConditions conditions;

 private:
  // The expert whose weights file the metadata names under `key`.
  model::wan::WanDit load_expert(const std::string& key, const core::Context& ctx,
                                 std::optional<core::DType> gemm_dtype) const {
    const std::map<std::string, std::string>& meta = file->metadata();
    auto load = model::wan::DitLoadOptions::with_num_heads(std::stoll(meta.at("num_heads")));
    load.gemm_dtype = gemm_dtype;
    return model::wan::load_dit(fixture_path(meta.at(key)), ctx, load);
  }
};

}  // namespace wanbatch::testing
