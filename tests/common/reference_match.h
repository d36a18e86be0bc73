// The fp32-against-float64-reference criterion the model tests share: every element within
// rel·(|expected| + rms(expected)). Relative to each value, with the output's typical magnitude as
// the floor so that values near zero are not held to an absolute 0.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace wanbatch::testing {

inline ::testing::AssertionResult matches_reference(const std::vector<float>& got,
                                                    const std::vector<float>& want, double rel) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << got.size() << " values, expected " << want.size();
  }
  double sum_sq = 0.0;
  for (float w : want) sum_sq += static_cast<double>(w) * w;
  const double rms = want.empty() ? 0.0 : std::sqrt(sum_sq / static_cast<double>(want.size()));
  size_t bad = 0, worst = 0;
  double worst_ratio = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double ratio =
        std::fabs(static_cast<double>(got[i]) - want[i]) / (std::fabs(want[i]) + rms);
    if (!(ratio <= rel)) ++bad;  // NaN counts as a mismatch
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess() << "worst relative error " << worst_ratio;
  return ::testing::AssertionFailure()
         << bad << " of " << want.size() << " values off by more than " << rel
         << "; worst: element " << worst << " = " << got[worst] << ", expected " << want[worst]
         << " (relative error " << worst_ratio << ")";
}

}  // namespace wanbatch::testing
