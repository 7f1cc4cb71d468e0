// base/: the formatting of quantities, poll_until, and the call trace.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

#include "base/deadline.h"
#include "base/format.h"
#include "base/log.h"
#include "base/poll_until.h"
#include "hosts/libvirt.h"
#include "hosts/libvirt_host.h"

namespace vmshift {
namespace {

using std::chrono::milliseconds;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

// Sets the log level for one test.
class LogLevel {
 public:
  explicit LogLevel(log::Level l) : before_(log::level()) { log::set_level(l); }
  ~LogLevel() { log::set_level(before_); }

 private:
  log::Level before_;
};

// Test the byte counts people read in plans and results.
TEST(HumanBytes, Units) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(10ull << 30), "10.0 GiB");
}

// Test that rates and durations carry their units, and 0 B/s reads as no limit.
TEST(HumanUnits, RatesAndDurations) {
  EXPECT_EQ(human_rate(0), "unlimited");
  EXPECT_EQ(human_rate(12ull << 20), "12.0 MiB/s");
  EXPECT_EQ(human_duration(std::chrono::microseconds(250)), "250 us");
  EXPECT_EQ(human_duration(milliseconds(850)), "850 ms");
  EXPECT_EQ(human_duration(milliseconds(1250)), "1.2 s");
}

// Test that poll_until returns at once when the condition holds already.
TEST(PollUntil, HoldsAtOnce) {
  int calls = 0;
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(poll_until(Deadline::after(std::chrono::seconds(10)), milliseconds(500), [&] {
    ++calls;
    return true;
  }));
  EXPECT_EQ(calls, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(400));
}

// Test that poll_until asks again after each interval until the condition holds.
TEST(PollUntil, AsksUntilItHolds) {
  int calls = 0;
  EXPECT_TRUE(poll_until(Deadline::after(std::chrono::seconds(10)), milliseconds(5),
                         [&] { return ++calls == 4; }));
  EXPECT_EQ(calls, 4);
}

// Test that poll_until gives up at the deadline, asking one last time there.
TEST(PollUntil, GivesUpAtTheDeadline) {
  int calls = 0;
  auto start = std::chrono::steady_clock::now();
  Deadline deadline = Deadline::after(milliseconds(120));
  EXPECT_FALSE(poll_until(deadline, milliseconds(50), [&] {
    ++calls;
    return false;
  }));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(deadline.expired());
  EXPECT_GE(took, milliseconds(120));
  EXPECT_LT(took, milliseconds(120 + 400));
  // At 0, 50 and 100 ms, then at the deadline (120 ms).
  EXPECT_EQ(calls, 4);
}

// Test that a traced call logs its name and arguments when it begins, and
// its duration when it ends, or that it failed.
TEST(Trace, NameArgumentsAndDuration) {
  LogLevel debug(log::Level::kDebug);
  ::testing::internal::CaptureStderr();
  {
    log::Trace trace("libvirt", "virDomainBlockCopy", "vm='{}' bandwidth={} B/s", "g1", 1048576);
    trace.result("rc={}", 0);
  }
  try {
    log::Trace trace("libvirt", "virDomainSaveFlags", "vm='{}' path='{}'", "g1", "/x.save");
    throw std::runtime_error("refused");
  } catch (const std::runtime_error&) {
  }
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, HasSubstr("vmshift debug [libvirt]: virDomainBlockCopy vm='g1' "
                             "bandwidth=1048576 B/s\n"));
  EXPECT_THAT(out, ContainsRegex("virDomainBlockCopy vm='g1' bandwidth=1048576 B/s: rc=0, done "
                                 "in [0-9.]+ (us|ms|s)\n"));
  EXPECT_THAT(out, ContainsRegex("virDomainSaveFlags vm='g1' path='/x.save': failed after "
                                 "[0-9.]+ (us|ms|s)\n"));
}

// Test that nothing is traced (or formatted) below debug level.
TEST(Trace, SilentBelowDebug) {
  LogLevel warn(log::Level::kWarn);
  ::testing::internal::CaptureStderr();
  { log::Trace trace("libvirt", "virDomainCreate", "vm='{}'", "g1"); }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

// Test that a call into libvirt (its test driver) is traced with the VM,
// the host and the duration.
TEST(Trace, LibvirtCall) {
  LogLevel debug(log::Level::kDebug);
  hosts::LibvirtHost host(hosts::Connection::open("test:///default", "lab1"));
  ::testing::internal::CaptureStderr();
  std::optional<std::string> state = host.vm_state("test");
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(state, "running");
  EXPECT_THAT(out, HasSubstr("[libvirt]: virDomainLookupByName vm='test' host='lab1'\n"));
  EXPECT_THAT(out, ContainsRegex("virDomainLookupByName vm='test' host='lab1': done in "
                                 "[0-9.]+ (us|ms|s)\n"));
  EXPECT_THAT(out, ContainsRegex("virDomainGetState vm='test': done in [0-9.]+ (us|ms|s)\n"));
}

}  // namespace
}  // namespace vmshift
