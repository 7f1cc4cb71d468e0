// The test guest and its oracle, on a real QEMU (KVM if usable, else TCG):
// the guest boots and acknowledges durable writes, vmshift-verify finds no
// loss on its disks, and the oracle reports a loss when one is made.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "ledger/ledger.h"
#include "qmp/commands.h"
#include "support/lab.h"
#include "support/qemu_process.h"
#include "support/wait.h"

namespace vmshift::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

Deadline soon() { return Deadline::after(30s); }

ledger::Console console_of(const std::string& path) {
  std::ifstream in(path);
  return ledger::parse_console(in);
}

struct Disk {
  std::string path;
  std::string size;
};

// Boots the test guest on the given qcow2 disks with its console appended to `console`.
std::unique_ptr<QemuProcess> boot(const TempDir& dir, const std::vector<Disk>& disks,
                                  const std::string& console, const std::string& extra = "") {
  std::vector<std::string> images;
  for (const auto& d : disks) {
    if (!std::filesystem::exists(d.path))
      run_tool({require_program("qemu-img", "qemu-utils"), "create", "-q", "-f", "qcow2", d.path,
                d.size});
    images.push_back(d.path);
  }
  QemuProcess::Options o = test_guest_options(console, images, extra);
  return std::make_unique<QemuProcess>(dir, o);
}

// Waits until every disk has at least `count` acknowledged writes; throws
// with the console's beginning if the guest does not get there.
void wait_for_acks(const std::string& console, std::size_t disks, std::uint64_t count) {
  bool ok = wait_until(60s, [&] {
    ledger::Console c = console_of(console);
    for (std::uint32_t d = 0; d < disks; ++d)
      if (!c.acked.count(d) || c.acked.at(d) < count) return false;
    return true;
  });
  if (ok) return;
  std::ifstream in(console);
  std::stringstream ss;
  ss << in.rdbuf();
  throw std::runtime_error(
      fmt::format("the guest did not acknowledge {} writes per disk within 60 s; console:\n{}",
                  count, ss.str().substr(0, 4000)));
}

struct Verdict {
  int exit_code;
  std::string out;
};

Verdict verify(const std::string& console, const std::vector<Disk>& disks) {
  Argv argv = {build_root() + "/src/ledger/vmshift-verify", "--console", console};
  for (std::size_t i = 0; i < disks.size(); ++i)
    argv.insert(argv.end(),
                {"--image", disks[i].path, "--format", "qcow2", "--disk", std::to_string(i)});
  RunResult r = run(argv, Deadline::after(120s));
  return {r.status.code, r.out + r.err};
}

// Test that the guest boots, acknowledges durable writes on two disks within
// a bounded time, runs its memory ledger, and verifies with nothing lost.
TEST(TestGuest, BootsWritesAndVerifies) {
  TempDir dir;
  std::string console = dir.file("console.log");
  std::vector<Disk> disks = {{dir.file("a.qcow2"), "64M"}, {dir.file("b.qcow2"), "32M"}};
  auto start = std::chrono::steady_clock::now();
  auto guest = boot(dir, disks, console);
  wait_for_acks(console, 2, 1);
  auto first_ack = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  RecordProperty("start_to_first_ack_ms", static_cast<int>(first_ack.count()));
  fmt::print("test guest: first acknowledged write {} ms after QEMU started\n", first_ack.count());
  wait_for_acks(console, 2, 100);
  ASSERT_TRUE(wait_until(30s, [&] { return console_of(console).memory_checks > 0; }));
  qmp::stop(guest->qmp(), soon());
  guest->quit(soon());

  ledger::Console c = console_of(console);
  EXPECT_EQ(c.blocks.at(0), 16384u);
  EXPECT_EQ(c.blocks.at(1), 8192u);
  EXPECT_TRUE(c.memory_errors.empty());
  EXPECT_TRUE(c.agent_errors.empty()) << c.agent_errors.front();
  Verdict v = verify(console, disks);
  EXPECT_EQ(v.exit_code, 0) << v.out;
  EXPECT_THAT(v.out, HasSubstr("disk 0 ("));
  EXPECT_THAT(v.out, ::testing::ContainsRegex("disk 1 .* 8192 blocks checked, [0-9]+ "
                                              "acknowledged writes, 0 lost writes, 0 torn"));
}

// Test that the oracle can fail: one damaged record that an acknowledged write
// covers makes vmshift-verify report it and exit 1.
TEST(TestGuest, OracleReportsDamagedRecord) {
  TempDir dir;
  std::string console = dir.file("console.log");
  std::vector<Disk> disks = {{dir.file("a.qcow2"), "16M"}};
  auto guest = boot(dir, disks, console);
  wait_for_acks(console, 1, 30);
  guest->quit(soon());
  ASSERT_EQ(verify(console, disks).exit_code, 0);

  ledger::Console c = console_of(console);
  ledger::Layout layout(c.blocks.at(0));
  std::uint64_t block = layout.block_of(c.acked.at(0) - 3);  // an acknowledged write
  run_tool({require_program("qemu-io", "qemu-utils"), "-c",
            fmt::format("write -P 0x41 {} 16", block * ledger::kBlockSize + 100), disks[0].path});
  Verdict v = verify(console, disks);
  EXPECT_EQ(v.exit_code, 1) << v.out;
  EXPECT_THAT(v.out, HasSubstr("0 lost writes, 1 torn/corrupt records"));
  EXPECT_THAT(v.out, HasSubstr(fmt::format("block {}: checksum mismatch", block)));
}

// Test that the oracle can fail: an image rolled back to an older copy loses
// the writes acknowledged since; also that a guest restarted on its disks
// continues its sequence numbers (both boots share one console log).
TEST(TestGuest, OracleReportsRollback) {
  TempDir dir;
  std::string console = dir.file("console.log");
  std::vector<Disk> disks = {{dir.file("a.qcow2"), "16M"}};
  {
    auto guest = boot(dir, disks, console);
    wait_for_acks(console, 1, 30);
    guest->quit(soon());
  }
  std::uint64_t first_boot = console_of(console).acked.at(0);
  std::filesystem::copy_file(disks[0].path, dir.file("old.qcow2"));
  {
    auto guest = boot(dir, disks, console);
    wait_for_acks(console, 1, first_boot + 30);
    guest->quit(soon());
  }
  ledger::Console c = console_of(console);
  EXPECT_EQ(c.agent_starts, 2u);
  ASSERT_EQ(verify(console, disks).exit_code, 0);

  std::filesystem::copy_file(dir.file("old.qcow2"), disks[0].path,
                             std::filesystem::copy_options::overwrite_existing);
  Verdict v = verify(console, disks);
  EXPECT_EQ(v.exit_code, 1) << v.out;
  EXPECT_THAT(v.out, ::testing::ContainsRegex("[1-9][0-9]* lost writes"));
  EXPECT_THAT(v.out, HasSubstr("RESULT: data lost"));
}

// Test that a console log without acknowledgements cannot pass: exit 2.
TEST(TestGuest, NothingAcknowledgedCannotVerify) {
  TempDir dir;
  std::vector<Disk> disks = {{dir.file("a.qcow2"), "16M"}};
  run_tool({require_program("qemu-img", "qemu-utils"), "create", "-q", "-f", "qcow2", disks[0].path,
            "16M"});
  std::ofstream(dir.file("console.log")) << "[    0.0] Linux version 6.1\n";
  Verdict v = verify(dir.file("console.log"), disks);
  EXPECT_EQ(v.exit_code, 2) << v.out;
  EXPECT_THAT(v.out, HasSubstr("cannot verify: the console log has no acknowledged write"));
}

}  // namespace
}  // namespace vmshift::testing
