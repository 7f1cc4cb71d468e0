// The copy engine between two lab hosts, through the real command line
// (vmshift copy, compare, jobs resume): only libvirt volume streams carry
// the data, from host1's local disk to host2's.
// Run through tests/lab/run-lab-test, which takes every lab down afterwards.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <optional>

#include "base/json.h"
#include "support/lab.h"
#include "support/vmshift_cli.h"
#include "support/wait.h"

namespace vmshift::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const std::string kImages = "/var/lib/libvirt/images";
constexpr std::int64_t kMiB = 1 << 20;

class CopyLab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    lab_ = new Lab("copy");
    lab_->up(2);
  }
  static void TearDownTestSuite() {
    delete lab_;
    lab_ = nullptr;
  }
  void SetUp() override { cli_ = std::make_unique<VmshiftCli>(*lab_); }

  static void sh(const std::string& host, const Argv& argv) {
    RunResult r = lab_->in_host(host, argv);
    if (!r.status.success())
      throw std::runtime_error(fmt::format("{}: {}{}", fmt::join(argv, " "), r.out, r.err));
  }
  static Json info(const std::string& host, const std::string& path) {
    RunResult r = lab_->in_host(host, {"qemu-img", "info", "--force-share", "--output=json", path});
    if (!r.status.success()) throw std::runtime_error("qemu-img info failed: " + r.err);
    return Json::parse(r.out);
  }
  static bool identical(const std::string& a, const std::string& b) {
    // host2 sees both through the shared directory only if copied there: compare by checksum.
    RunResult ra = lab_->in_host("host1", {"sha256sum", a});
    RunResult rb = lab_->in_host("host2", {"sha256sum", b});
    return ra.status.success() && rb.status.success() &&
           ra.out.substr(0, 64) == rb.out.substr(0, 64);
  }
  // A qcow2 on host1 with data at two places (1 GiB virtual, 128 KiB clusters).
  static void make_qcow2(const std::string& path, const std::string& mib_at_0 = "60M") {
    sh("host1", {"qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=128k", path, "1G"});
    sh("host1", {"qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 " + mib_at_0, "-c",
                 "write -P 0x62 900M 20M", path});
  }
  Json copy_done(const Argv& args) {
    Argv a = {"copy"};
    a.insert(a.end(), args.begin(), args.end());
    a.push_back("--json");
    RunResult r = cli_->run(a);
    std::vector<Json> ev = json_lines(r.out);
    if (ev.empty() || ev.back().get_string("event") != "finished")
      throw std::runtime_error("vmshift copy gave no result: " + r.out + r.err);
    return ev.back();
  }

  static Lab* lab_;
  std::unique_ptr<VmshiftCli> cli_;
};
Lab* CopyLab::lab_ = nullptr;

// Test that a sparse raw image crosses to host2 sparse: the same bytes, the
// same length, about the same allocation, and only its data travelled.
TEST_F(CopyLab, SparseRawStaysSparse) {
  std::string src = kImages + "/sparse.raw", dst = kImages + "/sparse-copy.raw";
  sh("host1", {"truncate", "-s", "2G", src});
  sh("host1",
     {"qemu-io", "-f", "raw", "-c", "write -P 0x71 0 8M", "-c", "write -P 0x72 1G 8M", src});
  Json done = copy_done({"host1:" + src, "host2:" + dst, "--verify"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  EXPECT_THAT(done.get_string("message"), HasSubstr("16.0 MiB of data"));
  Json a = info("host1", src), b = info("host2", dst);
  EXPECT_EQ(b.get_string("format"), "raw");
  EXPECT_EQ(b.get_int("virtual-size"), 2ll << 30);
  EXPECT_LT(b.get_int("actual-size"), 20 * kMiB) << "the copy is not sparse";
  EXPECT_LE(b.get_int("actual-size"), a.get_int("actual-size") + kMiB);
  EXPECT_TRUE(identical(src, dst));
}

// Test that a qcow2 stays a qcow2 with its cluster size, the guest-visible
// data the same, about the same allocation.
TEST_F(CopyLab, Qcow2StaysQcow2) {
  std::string src = kImages + "/q.qcow2", dst = kImages + "/q-copy.qcow2";
  make_qcow2(src);
  Json done = copy_done({"host1:" + src, "host2:" + dst, "--verify"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  Json a = info("host1", src), b = info("host2", dst);
  EXPECT_EQ(b.get_string("format"), "qcow2");
  EXPECT_EQ(b.get_int("cluster-size"), 128 * 1024);
  EXPECT_EQ(b.get_int("virtual-size"), 1ll << 30);
  EXPECT_LE(b.get_int("actual-size"), a.get_int("actual-size") + kMiB);
  EXPECT_TRUE(identical(src, dst));
  EXPECT_TRUE(lab_->in_host("host2", {"qemu-img", "check", "-q", dst}).status.success());
}

// Test that comparing the checksums of source and copy finds one flipped
// byte in the right chunk, and a fresh copy compares equal.
TEST_F(CopyLab, CompareCatchesAFlippedByte) {
  std::string src = kImages + "/f.qcow2", dst = kImages + "/f-copy.qcow2";
  make_qcow2(src);
  ASSERT_EQ(copy_done({"host1:" + src, "host2:" + dst}).get_string("state"), "completed");
  Argv cmp = {"compare", "host1:" + src, "host2:" + dst, "--chunk-mib", "4", "--json"};
  RunResult same = cli_->run(cmp);
  EXPECT_EQ(same.status.code, 0) << same.out << same.err;
  // Flip one byte 10 MiB + 5 into the copy: chunk 2 of 4 MiB.
  sh("host2",
     {"sh", "-c", "printf 'Z' | dd of=" + dst + " bs=1 seek=10485765 conv=notrunc status=none"});
  RunResult differ = cli_->run(cmp);
  EXPECT_EQ(differ.status.code, 1);
  Json j = Json::parse(differ.out);
  EXPECT_FALSE(j.get_bool("same"));
  ASSERT_EQ(j.get("mismatched").size(), 1u) << differ.out;
  EXPECT_EQ(j.get("mismatched").at(0).as_int(), 2);
  RunResult text = cli_->run({"compare", "host1:" + src, "host2:" + dst, "--chunk-mib", "4"});
  EXPECT_THAT(text.out, HasSubstr("differ in 1 of"));
}

// Test that a copy whose vmshift process is killed half-way is recovered as
// failed and resumable, and that `vmshift jobs resume` copies only the
// chunks that were missing, to an identical file.
TEST_F(CopyLab, KilledCopyResumes) {
  std::string src = kImages + "/k.qcow2", dst = kImages + "/k-copy.qcow2";
  make_qcow2(src, "100M");
  Process p = cli_->start(
      {"copy", "host1:" + src, "host2:" + dst, "--bandwidth", "25", "--chunk-mib", "8", "--json"});
  ASSERT_TRUE(wait_until(60s, [&] {
    Json all = cli_->jobs();
    return all.size() == 1 && all.at(0).get_int("bytes_done") >= 40 * kMiB;
  })) << cli_->jobs().dump();
  std::int64_t id = cli_->jobs().at(0).get_int("id");
  cli_->kill_job_process(id);
  p.wait(Deadline::after(10s));
  RunResult r = cli_->run({"jobs"});
  EXPECT_THAT(r.err, HasSubstr(fmt::format("job {} (copy of k.qcow2): its vmshift process died "
                                           "after ",
                                           id)));
  EXPECT_THAT(r.err, HasSubstr(fmt::format("`vmshift jobs resume {}` continues the copy", id)));
  Json j = cli_->job(id);
  EXPECT_EQ(j.get_string("state"), "failed");
  std::int64_t total = (info("host1", src).get_int("actual-size") + 8 * kMiB - 1) / (8 * kMiB);

  RunResult resumed = cli_->run({"jobs", "resume", std::to_string(id), "--json"});
  ASSERT_EQ(resumed.status.code, 0) << resumed.out << resumed.err;
  j = cli_->job(id);
  EXPECT_EQ(j.get_string("state"), "completed");
  std::string detail;
  for (const auto& s : j.get("steps").items())
    if (s.get_string("name") == "copy") detail = s.get_string("detail");
  int copied = 0, before = 0;
  ASSERT_EQ(std::sscanf(detail.c_str(), "%d chunks copied (%d done before)", &copied, &before), 2)
      << detail;
  EXPECT_GE(before, 4) << detail;
  EXPECT_GT(copied, 0);
  EXPECT_LE(copied + before, total + 1) << detail << ": chunks travelled twice";
  EXPECT_TRUE(identical(src, dst));
}

// Test that a foreground `vmshift copy` whose output goes away (the reader
// of its --json closes the pipe: EPIPE, as a closed terminal gives EIO)
// only stops showing the job: it exits with status 2, and the copy goes on
// in its own process to an identical file.
TEST_F(CopyLab, ClosedOutputLeavesTheCopyRunning) {
  std::string src = kImages + "/e.qcow2", dst = kImages + "/e-copy.qcow2";
  make_qcow2(src, "100M");
  Process p = cli_->start(
      {"copy", "host1:" + src, "host2:" + dst, "--bandwidth", "20", "--chunk-mib", "8", "--json"});
  UniqueFd out = p.take_stdout();
  ASSERT_TRUE(wait_for_text(out, R"("event":"progress")", Deadline::after(60s)));
  out.reset();
  std::optional<ExitStatus> st = p.wait(Deadline::after(30s));
  ASSERT_TRUE(st.has_value()) << "vmshift went on writing to a closed pipe";
  EXPECT_EQ(st->code, 2) << st->describe();
  std::int64_t id = cli_->jobs().at(0).get_int("id");
  RunResult w = cli_->run({"jobs", "wait", std::to_string(id), "--timeout", "120"});
  EXPECT_EQ(w.status.code, 0) << w.out << w.err;
  EXPECT_EQ(cli_->job(id).get_string("state"), "completed");
  EXPECT_TRUE(identical(src, dst));
}

// Test that --bandwidth holds the data rate within 10 % of the limit.
TEST_F(CopyLab, BandwidthLimitHolds) {
  std::string src = kImages + "/b.raw", dst = kImages + "/b-copy.raw";
  sh("host1", {"qemu-img", "create", "-q", "-f", "raw", src, "128M"});
  sh("host1", {"qemu-io", "-f", "raw", "-c", "write -P 0x61 0 80M", src});
  Json done = copy_done({"host1:" + src, "host2:" + dst, "--bandwidth", "20"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  std::string m = done.get_string("message");
  double seconds = 0;
  auto in = m.find(" in ");
  ASSERT_NE(in, std::string::npos) << m;
  ASSERT_EQ(std::sscanf(m.c_str() + in, " in %lf s", &seconds), 1) << m;
  double rate = 80.0 / seconds;  // MiB/s of data
  EXPECT_GT(rate, 18.0) << m;
  EXPECT_LT(rate, 22.0) << m;
}

// Test that a copy refuses an existing destination, and the source itself even
// with --force (by path and through a link).
TEST_F(CopyLab, Refusals) {
  std::string src = kImages + "/r.qcow2";
  make_qcow2(src);
  sh("host2", {"touch", kImages + "/taken.qcow2"});
  RunResult taken = cli_->run({"copy", "host1:" + src, "host2:" + kImages + "/taken.qcow2"});
  EXPECT_EQ(taken.status.code, 1);
  EXPECT_THAT(taken.out, HasSubstr("already exists (--force replaces it). Nothing was changed."));
  RunResult self = cli_->run({"copy", "host1:" + src, "host1:" + src, "--force"});
  EXPECT_THAT(self.out, HasSubstr("is the source itself"));
  sh("host1", {"ln", "-s", src, kImages + "/alias.qcow2"});
  RunResult alias =
      cli_->run({"copy", "host1:" + src, "host1:" + kImages + "/alias.qcow2", "--force"});
  EXPECT_THAT(alias.out, HasSubstr("is the source itself"));
  EXPECT_TRUE(lab_->in_host("host1", {"qemu-img", "check", "-q", src}).status.success())
      << "the source was touched";
  RunResult none = cli_->run({"copy", "host1:" + kImages + "/none.qcow2", "host2:/x.qcow2"});
  EXPECT_THAT(none.out, HasSubstr("there is no file host1:" + kImages + "/none.qcow2"));
  RunResult bad = cli_->run({"copy", "host1:relative", "host2:/x"});
  EXPECT_THAT(bad.err, HasSubstr("must be HOST:/ABSOLUTE/PATH"));
}

}  // namespace
}  // namespace vmshift::testing
