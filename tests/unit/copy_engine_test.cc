// The copy engine on real files in a temporary directory: sparse raw files
// stay sparse, qcow2 stays qcow2 with its cluster size, a checksum verify
// finds a flipped byte, an interrupted copy resumes with only the missing
// chunks, and the bandwidth limit holds.
#include "transfer/copy_engine.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <utility>

#include "base/error.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "migrate/copy_files.h"
#include "support/fake_host.h"
#include "support/fake_job.h"
#include "support/temp_dir.h"
#include "transfer/local_file.h"

namespace vmshift::transfer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TempDir;

constexpr std::uint64_t kMiB = 1ull << 20;

// Writes `length` bytes of a pattern at offset (the file grows as needed).
void put(const std::string& path, std::uint64_t offset, std::uint64_t length, char fill) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  std::string data(length, fill);
  for (std::uint64_t i = 0; i < length; i += 4096) data[i] = static_cast<char>(i / 4096);
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)),
            static_cast<ssize_t>(data.size()));
  ::close(fd);
}

void sized(const std::string& path, std::uint64_t length) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(length)), 0);
  ::close(fd);
}

bool same_bytes(const std::string& a, const std::string& b) {
  RunResult r = run(Argv{"cmp", "-s", a, b}, Deadline::after(std::chrono::seconds(60)));
  return r.status.success();
}

class Counting : public CopyObserver {
 public:
  void chunk_done(const Journal& j) override {
    saved = codec::dump(j);
    ++saves;
  }
  bool cancel_requested() override { return cancel_after >= 0 && saves > cancel_after; }
  std::string saved;
  int saves = 0;
  int cancel_after = -1;
};

class CopyEngineTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return dir_.file(name); }
  TempDir dir_;
  Counting obs_;
};

// Test that a sparse raw file arrives byte for byte with its holes: only
// the data travels, and the copy allocates about what the source does.
TEST_F(CopyEngineTest, SparseRawStaysSparse) {
  std::string src = path("src.raw"), dst = path("dst.raw");
  sized(src, 256 * kMiB);
  put(src, 0, 1 * kMiB, 'a');
  put(src, 100 * kMiB, 3 * kMiB, 'b');
  put(src, 255 * kMiB, 1 * kMiB, 'c');
  LocalFile s(src), d(dst);
  Journal j;
  CopyStats st = copy(s, d, j, {.chunk_size = 16 * kMiB}, obs_);
  EXPECT_EQ(st.chunks_copied, 16u);
  EXPECT_EQ(st.data_bytes, 5 * kMiB);
  EXPECT_EQ(st.hole_bytes, 251 * kMiB);
  EXPECT_TRUE(same_bytes(src, dst));
  EXPECT_EQ(d.length(), 256 * kMiB);
  EXPECT_LE(d.allocated(), s.allocated() + kMiB);
  EXPECT_TRUE(j.complete());
  EXPECT_TRUE(verify(s, d, 16 * kMiB).ok());
}

// Test that a file ending in a hole keeps its length, and that an empty
// file copies too.
TEST_F(CopyEngineTest, TrailingHoleAndEmptyFile) {
  std::string src = path("tail.raw"), dst = path("tail.copy");
  put(src, 0, 4096, 'x');
  sized(src, 10 * kMiB + 123);
  LocalFile s(src), d(dst);
  Journal j;
  copy(s, d, j, {.chunk_size = 4 * kMiB}, obs_);
  EXPECT_EQ(d.length(), 10 * kMiB + 123);
  EXPECT_TRUE(same_bytes(src, dst));
  EXPECT_LT(d.allocated(), 64 * 1024u);

  std::string empty = path("empty"), empty_copy = path("empty.copy");
  sized(empty, 0);
  LocalFile e(empty), ec(empty_copy);
  Journal je;
  EXPECT_EQ(copy(e, ec, je, {}, obs_).chunks_copied, 0u);
  EXPECT_TRUE(ec.exists());
  EXPECT_EQ(ec.length(), 0u);
}

// Test that a qcow2 image stays a qcow2 with the same cluster size and the
// same guest-visible data, taking about the same room.
TEST_F(CopyEngineTest, Qcow2StaysQcow2) {
  std::string src = path("src.qcow2"), dst = path("dst.qcow2");
  Deadline limit = Deadline::after(std::chrono::seconds(60));
  run_checked(Argv{"qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=128k", src, "1G"},
              limit);
  run_checked(Argv{"qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 3M", "-c",
                   "write -P 0x62 700M 5M", src},
              limit);
  LocalFile s(src), d(dst);
  Journal j;
  copy(s, d, j, {.chunk_size = 8 * kMiB}, obs_);
  Json info = Json::parse(run_checked(Argv{"qemu-img", "info", "--output=json", dst}, limit).out);
  EXPECT_EQ(info.get_string("format"), "qcow2");
  EXPECT_EQ(info.get_int("cluster-size"), 128 * 1024);
  EXPECT_EQ(info.get_int("virtual-size"), 1ll << 30);
  EXPECT_TRUE(run(Argv{"qemu-img", "compare", "-q", src, dst}, limit).status.success());
  EXPECT_LE(d.allocated(), s.allocated() + kMiB);
}

// Test that verify finds the one chunk where a byte was flipped.
TEST_F(CopyEngineTest, VerifyCatchesAFlippedByte) {
  std::string src = path("v.raw"), dst = path("v.copy");
  put(src, 0, 20 * kMiB, 'v');
  LocalFile s(src), d(dst);
  Journal j;
  copy(s, d, j, {.chunk_size = 4 * kMiB}, obs_);
  ASSERT_TRUE(verify(s, d, 4 * kMiB).ok());
  put(dst, 13 * kMiB + 17, 1, 'Z');
  VerifyResult v = verify(s, d, 4 * kMiB);
  EXPECT_EQ(v.chunks, 5u);
  EXPECT_THAT(v.mismatched, ElementsAre(3u));
  // A chunk's checksum is the journal's: the copy's record finds it too.
  EXPECT_NE(chunk_hash(d, 12 * kMiB, 4 * kMiB), j.done.at(3));
  EXPECT_EQ(chunk_hash(s, 12 * kMiB, 4 * kMiB), j.done.at(3));
}

// Test that a copy cancelled after some chunks keeps its journal, and that
// the next run copies only the chunks that were missing.
TEST_F(CopyEngineTest, InterruptedCopyResumes) {
  std::string src = path("r.raw"), dst = path("r.copy");
  put(src, 0, 40 * kMiB, 'r');
  LocalFile s(src), d(dst);
  Journal j;
  obs_.cancel_after = 4;  // the create and 4 chunks are saved, then a cancel
  try {
    copy(s, d, j, {.chunk_size = 4 * kMiB}, obs_);
    FAIL() << "no cancel";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCancelled);
    EXPECT_THAT(e.what(), HasSubstr("after 4 of 10 chunks"));
  }
  // The journal went through its JSON form, as through the job store.
  Journal back = codec::parse<Journal>(obs_.saved, "journal");
  EXPECT_EQ(back.done.size(), 4u);
  Counting second;
  CopyStats st = copy(s, d, back, {.chunk_size = 999}, second);
  EXPECT_EQ(st.chunks_skipped, 4u);
  EXPECT_EQ(st.chunks_copied, 6u);
  EXPECT_EQ(st.data_bytes, 24 * kMiB);
  EXPECT_TRUE(same_bytes(src, dst));
  EXPECT_TRUE(back.complete());
  EXPECT_EQ(back.chunk_size, 4 * kMiB) << "a resumed copy keeps its chunks";

  // A source that changed length since the journal was made is refused.
  put(src, 40 * kMiB, 1, 'x');
  try {
    copy(s, d, back, {}, second);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadData);
    EXPECT_THAT(e.what(), HasSubstr("the source changed since the copy began"));
  }
}

// Test that the destination is never a file that already exists.
TEST_F(CopyEngineTest, RefusesAnExistingDestination) {
  std::string src = path("e.raw"), dst = path("e.copy");
  put(src, 0, kMiB, 'e');
  put(dst, 0, 10, 'x');
  LocalFile s(src), d(dst);
  Journal j;
  try {
    copy(s, d, j, {}, obs_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists);
  }
  // The journal does not claim a file that is not the copy's.
  EXPECT_FALSE(codec::parse<Journal>(obs_.saved, "journal").created);
  EXPECT_FALSE(j.created);
}

// Test that the journal claims the destination before making it: a copy
// killed between the two (the saved journal claims a file that is not
// there) makes it on resume and completes; one killed after it resumes
// into the file it made.
TEST_F(CopyEngineTest, KilledAroundTheCreate) {
  std::string src = path("c.raw"), dst = path("c.copy");
  put(src, 0, 8 * kMiB, 'c');
  LocalFile s(src), d(dst);

  class FirstSave : public CopyObserver {
   public:
    explicit FirstSave(LocalFile& dst) : dst_(dst) {}
    void chunk_done(const Journal& j) override {
      if (first.empty()) {
        first = codec::dump(j);
        existed = dst_.exists();
      }
    }
    bool cancel_requested() override { return !first.empty(); }
    LocalFile& dst_;
    std::string first;
    bool existed = true;
  } killed(d);
  Journal j;
  EXPECT_THROW(copy(s, d, j, {.chunk_size = 2 * kMiB}, killed), Error);
  EXPECT_FALSE(killed.existed) << "the claim is saved before the file is made";
  Journal claim = codec::parse<Journal>(killed.first, "journal");
  EXPECT_TRUE(claim.created);

  // Killed before the create: no file, the claim saved.
  ASSERT_EQ(::unlink(dst.c_str()), 0);
  Counting again;
  CopyStats st = copy(s, d, claim, {}, again);
  EXPECT_EQ(st.chunks_copied, 4u);
  EXPECT_TRUE(same_bytes(src, dst));

  // Killed after the create: the file is there, nothing done yet.
  Journal made = codec::parse<Journal>(killed.first, "journal");
  ASSERT_EQ(::truncate(dst.c_str(), 0), 0);
  sized(dst, 8 * kMiB);
  st = copy(s, d, made, {}, again);
  EXPECT_EQ(st.chunks_copied, 4u);
  EXPECT_TRUE(same_bytes(src, dst));
}

// Test that data bytes wait for the rate: 6 MiB at 12 MiB/s take at least
// half a second (a lower bound: the limiter only ever waits).
TEST_F(CopyEngineTest, BandwidthLimitWaits) {
  std::string src = path("b.raw"), dst = path("b.copy");
  put(src, 0, 6 * kMiB, 'b');
  LocalFile s(src), d(dst);
  Journal j;
  auto start = std::chrono::steady_clock::now();
  copy(s, d, j, {.chunk_size = 2 * kMiB, .bandwidth = 12 * kMiB}, obs_);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(480));
}

// Test that the journal survives its JSON form.
TEST(Journal, RoundTrip) {
  Journal j;
  j.chunk_size = 4 * kMiB;
  j.length = 10 * kMiB;
  j.created = true;
  j.done = {{0, 0xdeadbeefcafef00dull}, {2, 1}};
  Journal back = codec::decode<Journal>(codec::encode(j), "journal");
  EXPECT_EQ(back.chunk_size, j.chunk_size);
  EXPECT_EQ(back.length, j.length);
  EXPECT_TRUE(back.created);
  EXPECT_EQ(back.done, j.done);
  EXPECT_EQ(back.chunks(), 3u);
  EXPECT_FALSE(back.complete());
}

}  // namespace
}  // namespace vmshift::transfer

// ---- the `vmshift copy` job on simulated hosts (real files)

namespace vmshift::migrate {
namespace {

using ::testing::HasSubstr;
using vmshift::testing::Events;
using vmshift::testing::FakeHost;
using vmshift::testing::FakeJob;

class CopyJobTest : public ::testing::Test {
 protected:
  Site site(FakeHost& h) {
    return Site{h, [&h](const std::string& p) { return h.file(p); }};
  }
  std::string bytes_of(FakeHost& h, const std::string& path) {
    std::ifstream in(h.real(path), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  Events events_;
  FakeHost one_{"host1", events_};
  FakeHost two_{"host2", events_};
};

// Test that copying a file of shared storage onto the same file through
// the other host is refused, even with --force, and the file is intact.
TEST_F(CopyJobTest, SharedFileOntoItselfThroughAnotherHost) {
  two_.share("/var/lib/libvirt/shared", one_);
  one_.put_file("/var/lib/libvirt/shared/a", 256 * 1024, 'a');
  std::string before = bytes_of(one_, "/var/lib/libvirt/shared/a");
  CopyJobOptions o{.from_host = "host1",
                   .from_path = "/var/lib/libvirt/shared/a",
                   .to_host = "host2",
                   .to_path = "/var/lib/libvirt/shared/a",
                   .force = true};
  Site from = site(one_), to = site(two_);
  FakeJob job;
  Result r = run_copy_job(from, to, o, "", job);
  EXPECT_EQ(r.outcome, Outcome::kFailed) << r.message;
  EXPECT_THAT(r.message, HasSubstr("is the source itself"));
  ASSERT_TRUE(one_.storage().exists("/var/lib/libvirt/shared/a"));
  EXPECT_EQ(bytes_of(one_, "/var/lib/libvirt/shared/a"), before);
}

// A job that runs something once, at its first progress report.
class ReplacingJob : public FakeJob {
 public:
  std::function<void()> at_progress;
  void progress(std::string_view phase, std::uint64_t done, std::uint64_t total) override {
    FakeJob::progress(phase, done, total);
    if (auto f = std::exchange(at_progress, nullptr)) f();
  }
};

// Test that a cancelled copy removes its partial destination only while it
// is the file the job created: a file put there meanwhile stays.
TEST_F(CopyJobTest, CancelLeavesAFileItDidNotCreate) {
  one_.put_file("/images/a", 4 * 1024 * 1024, 'a');
  std::filesystem::create_directories(two_.real("/images"));
  CopyJobOptions o{.from_host = "host1",
                   .from_path = "/images/a",
                   .to_host = "host2",
                   .to_path = "/images/b",
                   .chunk_size = 1024 * 1024};
  Site from = site(one_), to = site(two_);
  ReplacingJob job;
  // Right after the copy made it, another file takes its place; then a cancel.
  job.at_progress = [&] {
    two_.replace_file("/images/b", 3, 'u');
    job.cancel = true;
  };
  Result r = run_copy_job(from, to, o, "", job);
  EXPECT_EQ(r.outcome, Outcome::kCancelled) << r.message;
  ASSERT_TRUE(two_.storage().exists("/images/b"));
  EXPECT_EQ(bytes_of(two_, "/images/b"), "uuu");
}

}  // namespace
}  // namespace vmshift::migrate
