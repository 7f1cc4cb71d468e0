// The job runner's parts that stand between a migration and the job store:
// the lease's heartbeat, the StoreContext a migration reports to, and
// other vmshift processes looking at a running job.
#include "core/runner.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <fstream>

#include "base/error.h"
#include "base/subprocess.h"
#include "support/temp_dir.h"
#include "support/wait.h"

#ifndef VMSHIFT_EXE
#error "VMSHIFT_EXE must be defined"
#endif

namespace vmshift::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;
using vmshift::testing::TempDir;
using vmshift::testing::wait_until;

// Another program's connection to the database that holds its write lock
// (BEGIN EXCLUSIVE) until released.
class ExclusiveLock {
 public:
  explicit ExclusiveLock(const std::string& path) {
    sqlite3* raw = nullptr;
    if (sqlite3_open(path.c_str(), &raw) != SQLITE_OK) throw std::runtime_error("open failed");
    db_.reset(raw);
    sqlite3_busy_timeout(raw, 10'000);
    if (sqlite3_exec(raw, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("BEGIN EXCLUSIVE: ") + sqlite3_errmsg(raw));
  }
  void release() {
    if (db_) sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    db_.reset();
  }
  ~ExclusiveLock() { release(); }

 private:
  struct Close {
    void operator()(sqlite3* db) const { sqlite3_close(db); }
  };
  std::unique_ptr<sqlite3, Close> db_;
};

std::int64_t lease_expiry_ms(JobStore& store, std::int64_t id) {
  Job j = store.get(id);
  if (!j.lease) return 0;
  return std::chrono::duration_cast<milliseconds>(j.lease->expires.time_since_epoch()).count();
}

class RunnerTest : public ::testing::Test {
 protected:
  // A running job of this process.
  std::int64_t start_job(JobStore& store, const std::string& params = "{}") {
    NewJob j{.vm = "vm",
             .vm_uuid = "6f1c1e4e-4a52-4c5c-9d0b-0c6b2f1f0aff",
             .type = "live-storage",
             .source_host = "local",
             .dest_host = "local",
             .slots = {{"local", LimitClass::kStorage}},
             .steps = {"check", "copy", "pivot"},
             .params = params};
    std::int64_t id = store.create(j);
    if (!store.try_start(id, [](const std::string&, LimitClass) { return 2; }))
      throw std::runtime_error("the job did not start");
    return id;
  }

  TempDir dir_{"vmshift-runner"};
  std::string path_ = dir_.file("state/jobs.db");
};

// Test that the heartbeat goes on renewing the lease after a renewal
// failed (the store was locked for longer than its busy timeout), instead
// of stopping for good at its first error.
TEST_F(RunnerTest, HeartbeatRetriesAfterAnError) {
  JobStore store = JobStore::open(path_);
  std::int64_t id = start_job(store);
  Heartbeat beat(path_, id, milliseconds(100), milliseconds(50));
  std::int64_t first = lease_expiry_ms(store, id);
  ASSERT_TRUE(wait_until(seconds(10), [&] { return lease_expiry_ms(store, id) > first; }))
      << "the heartbeat never renewed the lease";
  {
    ExclusiveLock lock(path_);
    std::this_thread::sleep_for(milliseconds(600));  // several renewals fail meanwhile
  }
  std::int64_t after_lock = lease_expiry_ms(store, id);
  EXPECT_TRUE(wait_until(seconds(10), [&] { return lease_expiry_ms(store, id) > after_lock; }))
      << "the heartbeat stopped renewing after an error";
}

Observer quiet_observer;

// Test that when the store cannot be written before the switch-over, the
// migration's reports do not throw (they are kept in memory), the job
// asks to be undone (cancel_requested), and once the store can be written
// again everything kept is written and the job ends with its message.
TEST_F(RunnerTest, StoreFailureBeforeTheSwitchUndoesTheJob) {
  JobStore store = JobStore::open(path_, milliseconds(100));
  std::int64_t id = start_job(store);
  StoreContext ctx(store, id, {"check", "copy", "pivot"}, quiet_observer, nullptr);
  ctx.step(0, migrate::StepState::kDone, "checked");
  ctx.save_state(R"({"phase":"copy"})");
  EXPECT_FALSE(ctx.cancel_requested());
  {
    ExclusiveLock lock(path_);
    EXPECT_NO_THROW(ctx.step(1, migrate::StepState::kRunning, ""));
    EXPECT_NO_THROW(ctx.save_state(R"({"phase":"ready"})"));
    EXPECT_NO_THROW(ctx.progress("copy", 5, 10));
    bool cancelled = false;
    EXPECT_NO_THROW(cancelled = ctx.cancel_requested());
    EXPECT_TRUE(cancelled) << "a store that cannot be written must undo the job before the switch";
    // The undo reports too.
    EXPECT_NO_THROW(ctx.step(1, migrate::StepState::kUndone, "undone from memory"));
    EXPECT_NO_THROW(ctx.save_state(R"({"phase":"undone"})"));
  }
  EXPECT_TRUE(
      ctx.finish(JobState::kCancelled, "the VM runs on its source", Deadline::after(seconds(10))));
  Job j = store.get(id);
  EXPECT_EQ(j.state, JobState::kCancelled);
  EXPECT_EQ(j.state_data, R"({"phase":"undone"})");
  EXPECT_EQ(j.steps[1].state, StepState::kUndone);
  EXPECT_EQ(j.steps[1].detail, "undone from memory");
  EXPECT_EQ(j.error, "the VM runs on its source");
}

// Test that after the switch-over a store that cannot be written does not
// undo the job: it goes on to completion, and what it reported is written
// when the store can be written again.
TEST_F(RunnerTest, StoreFailureAfterTheSwitchLetsTheJobFinish) {
  JobStore store = JobStore::open(path_, milliseconds(100));
  std::int64_t id = start_job(store);
  StoreContext ctx(store, id, {"check", "copy", "pivot"}, quiet_observer, nullptr);
  ctx.checkpoint("switched");
  ctx.pause(milliseconds(12));
  {
    ExclusiveLock lock(path_);
    EXPECT_NO_THROW(ctx.step(2, migrate::StepState::kDone, "pivoted"));
    bool cancelled = true;
    EXPECT_NO_THROW(cancelled = ctx.cancel_requested());
    EXPECT_FALSE(cancelled);
  }
  EXPECT_TRUE(ctx.finish(JobState::kCompleted, "moved", Deadline::after(seconds(10))));
  Job j = store.get(id);
  EXPECT_EQ(j.state, JobState::kCompleted);
  EXPECT_EQ(j.steps[2].state, StepState::kDone);
  EXPECT_EQ(j.pause_ms, 12);
}

// Test that a finish the store refuses until its deadline reports false
// (the caller then prints the outcome itself), and throws nothing.
TEST_F(RunnerTest, FinishGivesUpAtItsDeadline) {
  JobStore store = JobStore::open(path_, milliseconds(100));
  std::int64_t id = start_job(store);
  StoreContext ctx(store, id, {"check", "copy", "pivot"}, quiet_observer, nullptr);
  ExclusiveLock lock(path_);
  bool written = true;
  EXPECT_NO_THROW(
      written = ctx.finish(JobState::kCompleted, "moved", Deadline::after(milliseconds(500))));
  EXPECT_FALSE(written);
  EXPECT_THAT(ctx.store_problem(), HasSubstr(path_));
}

// Test that `vmshift jobs` run with the clock 20 s ahead (libfaketime), so
// that the running job's lease looks expired to it, recovers nothing: the
// job's process is alive, so the job is not stale.
TEST_F(RunnerTest, JobsWithTheClockAheadLeavesALiveJobAlone) {
  std::optional<std::string> faketime = find_program("faketime");
  ASSERT_TRUE(faketime) << "faketime is missing: apt-get install faketime";
  std::int64_t id;
  {
    JobStore store = JobStore::open(path_);
    // A live-storage job of a bare QEMU that has changed nothing yet:
    // "recovering" it would end it as rolled back at once.
    id = start_job(
        store,
        R"({"guest":{"kind":"qmp","host":"local","vm":"","socket":"/nonexistent.qmp"},"options":{}})");
  }
  std::string config = dir_.file("config.toml");
  std::ofstream(config) << "[[host]]\nname = \"local\"\nuri = \"qemu:///system\"\n";
  SpawnOptions so;
  // libfaketime is preloaded ahead of an ASan build's runtime: ASan must
  // not refuse that link order (the option is ignored by other builds).
  so.extra_env = {"VMSHIFT_STATE_DIR=" + dir_.file("state"),
                  "ASAN_OPTIONS=verify_asan_link_order=0"};
  Argv argv = {*faketime, "-f", "+20s", VMSHIFT_EXE, "--config", config, "jobs"};
  RunResult r = run(argv, Deadline::after(seconds(60)), so);
  EXPECT_EQ(r.status.code, 0) << r.err;
  // The clock really was ahead in that process.
  RunResult date = run(Argv{*faketime, "-f", "+20s", "date", "+%s"}, Deadline::after(seconds(10)));
  EXPECT_GE(std::stoll(date.out),
            std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch())
                    .count() +
                15);
  EXPECT_THAT(r.err, Not(HasSubstr(fmt::format("job {}", id))));
  JobStore store = JobStore::open(path_);
  Job j = store.get(id);
  EXPECT_EQ(j.state, JobState::kRunning) << j.error;
  ASSERT_TRUE(j.lease);
  EXPECT_EQ(j.lease->pid, ::getpid());
}

// Test that opening the store again in a process that has it open (a job
// and its heartbeat each have a connection) keeps that process's locks on
// the database: another process that opens and closes the store (here
// `vmshift jobs`) must not take itself for the last user and remove the
// write-ahead log under the connections still open, which corrupts the
// store ("database disk image is malformed").
TEST_F(RunnerTest, OpeningTheStoreAgainKeepsThisProcessLocks) {
  JobStore first = JobStore::open(path_);
  start_job(first);
  JobStore second = JobStore::open(path_);
  ASSERT_EQ(::access((path_ + "-wal").c_str(), F_OK), 0);
  std::string config = dir_.file("config.toml");
  std::ofstream(config) << "[[host]]\nname = \"local\"\nuri = \"qemu:///system\"\n";
  SpawnOptions so;
  so.extra_env = {"VMSHIFT_STATE_DIR=" + dir_.file("state")};
  RunResult r =
      run(Argv{VMSHIFT_EXE, "--config", config, "jobs"}, Deadline::after(seconds(60)), so);
  EXPECT_EQ(r.status.code, 0) << r.err;
  EXPECT_EQ(::access((path_ + "-wal").c_str(), F_OK), 0)
      << "the other process removed the write-ahead log of open connections";
  EXPECT_NO_THROW(first.list());
  EXPECT_NO_THROW(second.list());
}

}  // namespace
}  // namespace vmshift::core
