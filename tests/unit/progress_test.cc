#include "core/progress.h"

#include <gtest/gtest.h>

#include <cmath>

namespace vmshift::core {
namespace {

using std::chrono::milliseconds;
using Clock = ProgressMeter::Clock;

// A fixed origin: the meter only uses differences between time points.
const Clock::time_point t0{};

Clock::time_point at_ms(std::int64_t ms) { return t0 + milliseconds(ms); }

// Test that there is no rate, and so no ETA, until two samples at least 100 ms apart.
TEST(Progress, NoRateBeforeTwoSamples) {
  ProgressMeter m;
  EXPECT_EQ(m.rate(), 0);
  EXPECT_FALSE(m.eta_seconds());
  m.update(0, 1000, at_ms(0));
  EXPECT_EQ(m.rate(), 0);
  EXPECT_FALSE(m.eta_seconds());
  m.update(10, 1000, at_ms(50));  // too close to the first sample
  EXPECT_EQ(m.rate(), 0);
  EXPECT_EQ(m.done(), 10);
  m.update(100, 1000, at_ms(100));  // measured against the sample at 0
  EXPECT_DOUBLE_EQ(m.rate(), 1000);
}

// Test that the first rate measurement sets the average directly and a constant rate stays put.
TEST(Progress, ConstantRate) {
  ProgressMeter m;
  m.update(0, 100'000'000, at_ms(0));
  m.update(1'000'000, 100'000'000, at_ms(1000));
  EXPECT_DOUBLE_EQ(m.rate(), 1'000'000);
  for (int s = 2; s <= 20; ++s) m.update(s * 1'000'000LL, 100'000'000, at_ms(s * 1000));
  EXPECT_NEAR(m.rate(), 1'000'000, 1e-6);
  ASSERT_TRUE(m.eta_seconds());
  EXPECT_NEAR(*m.eta_seconds(), 80, 1e-9);
  EXPECT_DOUBLE_EQ(m.percent(), 20);
}

// Test that after a change of rate the average moves with a 3 s time constant and converges.
TEST(Progress, ConvergesToNewRate) {
  ProgressMeter m;
  m.update(0, 1'000'000'000, at_ms(0));
  m.update(1000, 1'000'000'000, at_ms(1000));  // 1000 B/s
  EXPECT_DOUBLE_EQ(m.rate(), 1000);
  // Now 4000 B/s, one sample per second.
  std::int64_t done = 1000;
  double expected = 1000;
  for (int s = 2; s <= 4; ++s) {
    done += 4000;
    m.update(done, 1'000'000'000, at_ms(s * 1000));
    expected += (1 - std::exp(-1.0 / 3.0)) * (4000 - expected);
    EXPECT_NEAR(m.rate(), expected, 1e-6) << "after " << s << " s";
  }
  // After 3 s (one time constant) about 63 % of the step is made up.
  EXPECT_NEAR(m.rate(), 1000 + 3000 * (1 - std::exp(-1.0)), 1e-6);
  for (int s = 5; s <= 40; ++s) {
    done += 4000;
    m.update(done, 1'000'000'000, at_ms(s * 1000));
  }
  EXPECT_NEAR(m.rate(), 4000, 1);
}

// Test that the smoothing depends on time, not on how often samples come.
TEST(Progress, SampleSpacingDoesNotMatter) {
  ProgressMeter coarse, fine;
  coarse.update(0, 0, at_ms(0));
  fine.update(0, 0, at_ms(0));
  coarse.update(1000, 0, at_ms(1000));
  fine.update(1000, 0, at_ms(1000));
  // 3000 B/s for 2 s: one sample versus twenty.
  coarse.update(7000, 0, at_ms(3000));
  for (int i = 1; i <= 20; ++i) fine.update(1000 + i * 300, 0, at_ms(1000 + i * 100));
  EXPECT_NEAR(coarse.rate(), fine.rate(), 1e-6);
}

// Test the ETA and percent while the total grows, as a mirror's does.
TEST(Progress, TotalChanges) {
  ProgressMeter m;
  m.update(0, 1000, at_ms(0));
  m.update(500, 1000, at_ms(1000));
  EXPECT_DOUBLE_EQ(m.percent(), 50);
  ASSERT_TRUE(m.eta_seconds());
  EXPECT_DOUBLE_EQ(*m.eta_seconds(), 1);
  m.update(500, 3000, at_ms(1050));  // the guest wrote more: 2500 left
  EXPECT_EQ(m.total(), 3000);
  EXPECT_NEAR(m.percent(), 100.0 / 6, 1e-9);
  EXPECT_DOUBLE_EQ(*m.eta_seconds(), 5);
}

// Test that percent is 0 without a total and stays within 0..100.
TEST(Progress, PercentClamps) {
  ProgressMeter m;
  EXPECT_EQ(m.percent(), 0);
  m.update(10, 0, at_ms(0));
  EXPECT_EQ(m.percent(), 0);
  m.update(1500, 1000, at_ms(200));
  EXPECT_EQ(m.percent(), 100);
  EXPECT_DOUBLE_EQ(*m.eta_seconds(), 0);  // done beyond total: nothing left
  m.update(-5, 1000, at_ms(400));
  EXPECT_EQ(m.percent(), 0);
}

// Test that work going backwards (a copy starting over) gives rate 0, not a negative rate.
TEST(Progress, BackwardsIsNoNegativeRate) {
  ProgressMeter m;
  m.update(1000, 2000, at_ms(0));
  m.update(0, 2000, at_ms(1000));
  EXPECT_EQ(m.rate(), 0);
  EXPECT_FALSE(m.eta_seconds());
}

}  // namespace
}  // namespace vmshift::core
