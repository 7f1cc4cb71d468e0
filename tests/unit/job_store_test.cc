#include "core/job_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <set>

#include "base/deadline.h"
#include "base/error.h"
#include "base/unique_fd.h"
#include "support/scoped_env.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace vmshift::core {
namespace {

using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using vmshift::testing::ScopedEnv;
using vmshift::testing::TempDir;
using vmshift::testing::wait_until;

constexpr LimitClass kStorage = LimitClass::kStorage;
constexpr LimitClass kLive = LimitClass::kLive;

LimitFn limit_of(int n) {
  return [n](const std::string&, LimitClass) { return n; };
}

NewJob job_with(std::vector<Slot> slots, std::string vm = "vm") {
  return NewJob{.vm = std::move(vm),
                .type = "live-storage",
                .source_host = "a",
                .dest_host = "a",
                .slots = std::move(slots),
                .steps = {"copy", "pivot"}};
}

std::vector<std::int64_t> ids_of(const std::vector<Job>& jobs) {
  std::vector<std::int64_t> ids;
  for (const Job& job : jobs) ids.push_back(job.id);
  return ids;
}

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error";
  return ErrorCode::kInternal;
}

// Runs SQL on the database directly, as another program could.
void raw_sql(const std::string& path, const std::string& sql) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  sqlite3_busy_timeout(db.get(), 10'000);
  ASSERT_EQ(sqlite3_exec(db.get(), sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db.get());
}

std::string raw_query(const std::string& path, const std::string& sql) {
  sqlite3* raw = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  std::string out;
  auto add = [](void* arg, int, char** values, char**) {
    *static_cast<std::string*>(arg) += values[0] != nullptr ? values[0] : "NULL";
    return 0;
  };
  EXPECT_EQ(sqlite3_exec(db.get(), sql.c_str(), add, &out, nullptr), SQLITE_OK);
  return out;
}

// A pipe for signalling between a test and its children.
struct Pipe {
  UniqueFd read, write;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

void put(const UniqueFd& fd, char c) {
  if (::write(fd.get(), &c, 1) != 1) ::_exit(4);
}

// One byte from fd; nullopt at end of file or when the deadline passes.
std::optional<char> get(const UniqueFd& fd, Deadline deadline) {
  for (;;) {
    pollfd p{.fd = fd.get(), .events = POLLIN, .revents = 0};
    int n = ::poll(&p, 1, deadline.poll_timeout_ms());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    char c;
    ssize_t r = ::read(fd.get(), &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r != 1) return std::nullopt;
    return c;
  }
}

// Blocks until every write end of the pipe is closed (or the deadline passes).
void wait_for_eof(const UniqueFd& fd, Deadline deadline) {
  while (get(fd, deadline)) {
  }
}

// A forked child process running body; killed and reaped when destroyed.
// Only a process without an open JobStore forks: SQLite connections must
// not cross fork(). The child opens its own store and ends with _exit.
class Child {
 public:
  explicit Child(const std::function<int()>& body) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int code = 3;
      try {
        code = body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", ::getpid(), e.what());
        code = 2;
      }
      ::_exit(code);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }
  void kill(int sig) const { ::kill(pid_, sig); }

  // Its exit code (128 + N if killed by signal N); -1 if it is still running at the limit.
  int wait(std::chrono::seconds limit = seconds(20)) {
    int status = 0;
    if (!wait_until(limit, [&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; })) return -1;
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

class JobStoreTest : public ::testing::Test {
 protected:
  TempDir dir_{"vmshift-jobs"};
  std::string path_ = dir_.file("state/jobs.db");
};

// Test that created jobs read back with every field and list newest first.
TEST_F(JobStoreTest, CreateGetList) {
  JobStore store = JobStore::open(path_);
  auto before = std::chrono::system_clock::now();
  NewJob a{.vm = "web1",
           .type = "live-storage",
           .source_host = "h1",
           .dest_host = "h2",
           .slots = {{"h1", kLive}, {"h2", kStorage}, {"h1", kLive}},
           .steps = {"plan", "copy", "pivot"},
           .params = R"({"disk":"vda"})"};
  std::int64_t id1 = store.create(a);
  std::int64_t id2 = store.create(job_with({{"h3", kStorage}}, "db1"));
  std::int64_t id3 = store.create(job_with({}, "cache1"));
  EXPECT_LT(id1, id2);
  EXPECT_LT(id2, id3);

  Job j = store.get(id1);
  EXPECT_EQ(j.id, id1);
  EXPECT_EQ(j.vm, "web1");
  EXPECT_EQ(j.type, "live-storage");
  EXPECT_EQ(j.source_host, "h1");
  EXPECT_EQ(j.dest_host, "h2");
  EXPECT_EQ(j.state, JobState::kQueued);
  // A slot listed twice is held once.
  EXPECT_THAT(j.slots, ElementsAre(Slot{"h1", kLive}, Slot{"h2", kStorage}));
  ASSERT_EQ(j.steps.size(), 3u);
  EXPECT_EQ(j.steps[1].name, "copy");
  for (const Step& s : j.steps) {
    EXPECT_EQ(s.state, StepState::kPending);
    EXPECT_FALSE(s.started);
    EXPECT_FALSE(s.ended);
  }
  EXPECT_EQ(j.params, R"({"disk":"vda"})");
  EXPECT_GE(j.created, before - seconds(1));
  EXPECT_LE(j.created, std::chrono::system_clock::now() + seconds(1));
  EXPECT_FALSE(j.started);
  EXPECT_FALSE(j.ended);
  EXPECT_FALSE(j.lease);
  EXPECT_FALSE(j.cancel_requested);
  EXPECT_FALSE(j.eta_seconds);
  EXPECT_FALSE(j.pause_ms);
  EXPECT_EQ(j.bytes_done, 0);

  EXPECT_THAT(ids_of(store.list()), ElementsAre(id3, id2, id1));
  EXPECT_THAT(ids_of(store.list(2)), ElementsAre(id3, id2));
  EXPECT_EQ(code_of([&] { store.get(id3 + 100); }), ErrorCode::kNotFound);
}

// Test that open creates the directory with mode 0700, and that the data survives reopening.
TEST_F(JobStoreTest, OpenCreatesPrivateDirectory) {
  std::int64_t id;
  {
    JobStore store = JobStore::open(path_);
    id = store.create(job_with({}));
  }
  struct stat st;
  ASSERT_EQ(::stat(dir_.file("state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  JobStore again = JobStore::open(path_);
  EXPECT_EQ(again.get(id).vm, "vm");
  EXPECT_EQ(raw_query(path_, "PRAGMA journal_mode"), "wal");
}

// Test where the default path points, and that computing it creates nothing.
TEST_F(JobStoreTest, DefaultPath) {
  ScopedEnv home("HOME", "/home/someone");
  {
    ScopedEnv state("VMSHIFT_STATE_DIR", "/srv/vmshift");
    EXPECT_EQ(JobStore::default_path(), "/srv/vmshift/jobs.db");
  }
  ScopedEnv state("VMSHIFT_STATE_DIR", nullptr);
  {
    ScopedEnv xdg("XDG_STATE_HOME", dir_.file("xdg").c_str());
    EXPECT_EQ(JobStore::default_path(), dir_.file("xdg") + "/vmshift/jobs.db");
    EXPECT_NE(::access(dir_.file("xdg").c_str(), F_OK), 0);
  }
  ScopedEnv xdg("XDG_STATE_HOME", nullptr);
  EXPECT_EQ(JobStore::default_path(), "/home/someone/.local/state/vmshift/jobs.db");
}

// Test that the schema version is recorded and a database of a newer version is refused.
TEST_F(JobStoreTest, SchemaVersion) {
  { JobStore::open(path_); }
  EXPECT_EQ(raw_query(path_, "PRAGMA user_version"), std::to_string(JobStore::kSchemaVersion));
  raw_sql(path_, "PRAGMA user_version = 7");
  try {
    JobStore::open(path_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
    EXPECT_THAT(e.what(), HasSubstr("version 7"));
    EXPECT_THAT(e.what(), HasSubstr("up to 2"));
  }
  // Refused without changing it.
  EXPECT_EQ(raw_query(path_, "PRAGMA user_version"), "7");
}

// Test that a file that is not a database gives an I/O error naming the store.
TEST_F(JobStoreTest, NotADatabase) {
  std::string path = dir_.file("garbage.db");
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("this is not an SQLite database, not even close to one, really\n", f);
  std::fclose(f);
  try {
    JobStore::open(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("not a database"));
  }
}

// Test that steps, progress, pause, recovery data and state round-trip, and finish records the
// message.
TEST_F(JobStoreTest, OwnerUpdatesRoundTrip) {
  JobStore store = JobStore::open(path_);
  std::int64_t id = store.create(job_with({{"a", kStorage}}));
  ASSERT_TRUE(store.try_start(id, limit_of(2)));
  Job j = store.get(id);
  EXPECT_EQ(j.state, JobState::kRunning);
  ASSERT_TRUE(j.started);
  ASSERT_TRUE(j.lease);
  EXPECT_EQ(j.lease->pid, ::getpid());
  EXPECT_EQ(j.lease->pid_start, JobStore::own_lease().pid_start);
  EXPECT_TRUE(JobStore::lease_alive(*j.lease));

  store.set_step(id, 0, StepState::kRunning);
  j = store.get(id);
  EXPECT_EQ(j.steps[0].state, StepState::kRunning);
  EXPECT_TRUE(j.steps[0].started);
  EXPECT_FALSE(j.steps[0].ended);
  store.set_step(id, 0, StepState::kDone, "copied 3 GiB");
  store.set_step(id, 1, StepState::kSkipped, "nothing to pivot");
  store.set_progress(id, 1500, 3000, 250.5, 6.0);
  store.set_pause(id, 42);
  store.set_state_data(id, R"({"mirror":"m0"})");
  store.set_state(id, JobState::kCancelling);
  j = store.get(id);
  EXPECT_EQ(j.steps[0].state, StepState::kDone);
  EXPECT_EQ(j.steps[0].detail, "copied 3 GiB");
  EXPECT_TRUE(j.steps[0].started);
  EXPECT_TRUE(j.steps[0].ended);
  EXPECT_LE(*j.steps[0].started, *j.steps[0].ended);
  EXPECT_EQ(j.steps[1].state, StepState::kSkipped);
  EXPECT_FALSE(j.steps[1].started);
  EXPECT_EQ(j.bytes_done, 1500);
  EXPECT_EQ(j.bytes_total, 3000);
  EXPECT_DOUBLE_EQ(j.rate, 250.5);
  EXPECT_EQ(j.eta_seconds, 6.0);
  EXPECT_EQ(j.pause_ms, 42);
  EXPECT_EQ(j.state_data, R"({"mirror":"m0"})");
  EXPECT_EQ(j.state, JobState::kCancelling);
  store.set_progress(id, 1600, 3000, 0, std::nullopt);
  EXPECT_FALSE(store.get(id).eta_seconds);

  EXPECT_EQ(code_of([&] { store.set_step(id, 2, StepState::kDone); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { store.set_state(id, JobState::kCompleted); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { store.finish(id, JobState::kRunning, ""); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { store.set_pause(id + 1, 1); }), ErrorCode::kNotFound);

  store.finish(id, JobState::kCancelled, "cancelled; the VM still runs from the source disk");
  j = store.get(id);
  EXPECT_EQ(j.state, JobState::kCancelled);
  EXPECT_EQ(j.error, "cancelled; the VM still runs from the source disk");
  EXPECT_EQ(j.result, "");
  EXPECT_TRUE(j.ended);
  EXPECT_FALSE(j.lease);
  // The lease went with it.
  EXPECT_EQ(code_of([&] { store.renew_lease(id); }), ErrorCode::kFailedPrecondition);

  std::int64_t done = store.create(job_with({{"a", kStorage}}));
  ASSERT_TRUE(store.try_start(done, limit_of(2)));
  store.finish(done, JobState::kCompleted, "moved vda to /new/vda.qcow2");
  j = store.get(done);
  EXPECT_EQ(j.state, JobState::kCompleted);
  EXPECT_EQ(j.result, "moved vda to /new/vda.qcow2");
  EXPECT_EQ(j.error, "");
}

// Test that with 2 per host a third job waits and starts when one finishes.
TEST_F(JobStoreTest, TwoPerHost) {
  JobStore store = JobStore::open(path_);
  auto limits = limit_of(2);
  std::int64_t j1 = store.create(job_with({{"a", kStorage}}));
  std::int64_t j2 = store.create(job_with({{"a", kStorage}}));
  std::int64_t j3 = store.create(job_with({{"a", kStorage}}));
  EXPECT_TRUE(store.try_start(j1, limits));
  EXPECT_TRUE(store.try_start(j2, limits));
  EXPECT_FALSE(store.try_start(j3, limits));
  EXPECT_FALSE(store.try_start(j3, limits));
  EXPECT_EQ(store.get(j3).state, JobState::kQueued);
  EXPECT_THAT(ids_of(store.blocking(j3)), ElementsAre(j1, j2));
  // Started jobs cannot be started again.
  EXPECT_EQ(code_of([&] { store.try_start(j1, limits); }), ErrorCode::kFailedPrecondition);

  store.finish(j1, JobState::kCompleted, "done");
  EXPECT_THAT(ids_of(store.blocking(j3)), ElementsAre(j2));
  EXPECT_TRUE(store.try_start(j3, limits));
  EXPECT_EQ(store.get(j3).state, JobState::kRunning);
}

// Test that hosts and limit classes are counted separately, with per-slot limits.
TEST_F(JobStoreTest, HostsAndClassesAreIndependent) {
  JobStore store = JobStore::open(path_);
  LimitFn limits = [](const std::string& host, LimitClass kind) {
    return host == "b" && kind == kLive ? 1 : 2;
  };
  std::int64_t a1 = store.create(job_with({{"a", kStorage}}));
  std::int64_t a2 = store.create(job_with({{"a", kStorage}}));
  ASSERT_TRUE(store.try_start(a1, limits));
  ASSERT_TRUE(store.try_start(a2, limits));
  EXPECT_TRUE(store.try_start(store.create(job_with({{"b", kStorage}})), limits));
  EXPECT_TRUE(store.try_start(store.create(job_with({{"a", kLive}})), limits));
  EXPECT_TRUE(store.try_start(store.create(job_with({{"b", kLive}})), limits));
  EXPECT_FALSE(store.try_start(store.create(job_with({{"b", kLive}})), limits));
  EXPECT_FALSE(store.try_start(store.create(job_with({{"a", kStorage}})), limits));
  // A job without slots never waits.
  EXPECT_TRUE(store.try_start(store.create(job_with({})), limits));
  // A limit of 0 holds a job forever.
  EXPECT_FALSE(store.try_start(store.create(job_with({{"c", kStorage}})), limit_of(0)));
}

// Test FIFO per slot: job 4 (host a) waits behind job 3 (hosts a and b) even when a frees up
// while job 3 still waits for b.
TEST_F(JobStoreTest, OlderQueuedJobIsNotOvertaken) {
  JobStore store = JobStore::open(path_);
  auto limits = limit_of(1);
  std::int64_t j1 = store.create(job_with({{"a", kStorage}}));
  std::int64_t j2 = store.create(job_with({{"b", kStorage}}));
  std::int64_t j3 = store.create(job_with({{"a", kStorage}, {"b", kStorage}}));
  std::int64_t j4 = store.create(job_with({{"a", kStorage}}));
  std::int64_t j5 = store.create(job_with({{"c", kStorage}}));
  ASSERT_TRUE(store.try_start(j1, limits));
  ASSERT_TRUE(store.try_start(j2, limits));
  EXPECT_FALSE(store.try_start(j3, limits));
  EXPECT_FALSE(store.try_start(j4, limits));
  // Other slots are not held up.
  EXPECT_TRUE(store.try_start(j5, limits));

  store.finish(j1, JobState::kCompleted, "done");  // a is free, b is not
  EXPECT_FALSE(store.try_start(j4, limits));
  EXPECT_THAT(ids_of(store.blocking(j4)), ElementsAre(j3));
  EXPECT_FALSE(store.try_start(j3, limits));
  EXPECT_THAT(ids_of(store.blocking(j3)), ElementsAre(j2));

  store.finish(j2, JobState::kCompleted, "done");
  EXPECT_FALSE(store.try_start(j4, limits));  // j3 is still first in line
  EXPECT_TRUE(store.try_start(j3, limits));
  EXPECT_FALSE(store.try_start(j4, limits));
  EXPECT_THAT(ids_of(store.blocking(j4)), ElementsAre(j3));
  store.finish(j3, JobState::kCompleted, "done");
  EXPECT_TRUE(store.try_start(j4, limits));
}

// Test that a job cancelled while queued stops holding back the jobs behind it.
TEST_F(JobStoreTest, CancelledQueuedJobFreesTheLine) {
  JobStore store = JobStore::open(path_);
  auto limits = limit_of(1);
  std::int64_t j1 = store.create(job_with({{"b", kStorage}}));
  std::int64_t j2 = store.create(job_with({{"a", kStorage}, {"b", kStorage}}));
  std::int64_t j3 = store.create(job_with({{"a", kStorage}}));
  ASSERT_TRUE(store.try_start(j1, limits));
  EXPECT_FALSE(store.try_start(j2, limits));
  EXPECT_FALSE(store.try_start(j3, limits));
  EXPECT_TRUE(store.request_cancel(j2));
  EXPECT_TRUE(store.try_start(j3, limits));
}

// Test a live storage migration: one live and one storage slot on each of two hosts.
TEST_F(JobStoreTest, LiveStorageMigrationHoldsFourSlots) {
  JobStore store = JobStore::open(path_);
  auto limits = limit_of(2);
  NewJob vsm{.vm = "web1",
             .type = "live-storage",
             .source_host = "src",
             .dest_host = "dst",
             .slots = {{"src", kLive}, {"src", kStorage}, {"dst", kLive}, {"dst", kStorage}},
             .steps = {"copy", "switch"}};
  std::int64_t s1 = store.create(job_with({{"dst", kStorage}}));
  std::int64_t s2 = store.create(job_with({{"dst", kStorage}}));
  ASSERT_TRUE(store.try_start(s1, limits));
  ASSERT_TRUE(store.try_start(s2, limits));
  std::int64_t v = store.create(vsm);
  std::int64_t live_src = store.create(job_with({{"src", kLive}}));
  std::int64_t live_other = store.create(job_with({{"other", kLive}}));

  EXPECT_FALSE(store.try_start(v, limits));  // dst storage is full
  EXPECT_THAT(ids_of(store.blocking(v)), ElementsAre(s1, s2));
  // src has room for live jobs, but the migration is ahead in line for it.
  EXPECT_FALSE(store.try_start(live_src, limits));
  EXPECT_THAT(ids_of(store.blocking(live_src)), ElementsAre(v));
  EXPECT_TRUE(store.try_start(live_other, limits));

  store.finish(s1, JobState::kCompleted, "done");
  EXPECT_TRUE(store.try_start(v, limits));
  // One live slot of src is taken by the migration; the other is free.
  EXPECT_TRUE(store.try_start(live_src, limits));
  // Now src live is full (the migration and live_src); dst storage too (s2 and the migration).
  EXPECT_FALSE(store.try_start(store.create(job_with({{"src", kLive}})), limits));
  EXPECT_FALSE(store.try_start(store.create(job_with({{"dst", kStorage}})), limits));
  EXPECT_TRUE(store.try_start(store.create(job_with({{"dst", kLive}})), limits));
  EXPECT_TRUE(store.try_start(store.create(job_with({{"src", kStorage}})), limits));
}

// Test request_cancel: a queued job is cancelled at once, a running one is flagged, a finished
// one cannot be cancelled.
TEST_F(JobStoreTest, RequestCancel) {
  JobStore store = JobStore::open(path_);
  std::int64_t queued = store.create(job_with({{"a", kStorage}}));
  EXPECT_TRUE(store.request_cancel(queued));
  Job j = store.get(queued);
  EXPECT_EQ(j.state, JobState::kCancelled);
  EXPECT_TRUE(j.ended);
  EXPECT_FALSE(j.error.empty());
  EXPECT_EQ(code_of([&] { store.try_start(queued, limit_of(2)); }), ErrorCode::kFailedPrecondition);
  EXPECT_FALSE(store.request_cancel(queued));

  std::int64_t running = store.create(job_with({{"a", kStorage}}));
  ASSERT_TRUE(store.try_start(running, limit_of(2)));
  EXPECT_TRUE(store.request_cancel(running));
  j = store.get(running);
  EXPECT_EQ(j.state, JobState::kRunning);
  EXPECT_TRUE(j.cancel_requested);
  EXPECT_FALSE(j.ended);

  store.finish(running, JobState::kFailed, "the copy failed; the VM runs from the source disk");
  EXPECT_FALSE(store.request_cancel(running));
  EXPECT_EQ(store.get(running).state, JobState::kFailed);
  EXPECT_EQ(code_of([&] { store.request_cancel(running + 1); }), ErrorCode::kNotFound);
}

// Test this process's lease and what makes a lease dead.
TEST(Lease, AliveAndDead) {
  Lease own = JobStore::own_lease();
  EXPECT_EQ(own.pid, ::getpid());
  EXPECT_GT(own.pid_start, 0);
  auto now = std::chrono::system_clock::now();
  EXPECT_GT(own.expires, now + JobStore::kLeaseTime - seconds(5));
  EXPECT_LE(own.expires, now + JobStore::kLeaseTime);
  EXPECT_TRUE(JobStore::lease_alive(own));

  // A live process's lease is alive however long ago it was renewed.
  Lease expired = own;
  expired.expires = now - seconds(1);
  EXPECT_TRUE(JobStore::lease_alive(expired));
  Lease other_start = own;
  other_start.pid_start += 1;  // the pid was reused by another process
  EXPECT_FALSE(JobStore::lease_alive(other_start));
  Lease no_pid = own;
  no_pid.pid = 0;
  EXPECT_FALSE(JobStore::lease_alive(no_pid));
}

// Test that a job whose process exited is stale, does not hold its slot, and can be taken over
// once.
TEST_F(JobStoreTest, ExitedOwnerIsStale) {
  std::int64_t id, other;
  {
    JobStore store = JobStore::open(path_);
    id = store.create(job_with({{"a", kStorage}}));
    other = store.create(job_with({{"a", kStorage}}));
  }
  Child child([&] {
    JobStore store = JobStore::open(path_);
    return store.try_start(id, limit_of(1)) ? 0 : 1;
  });
  ASSERT_EQ(child.wait(), 0);

  JobStore store = JobStore::open(path_);
  Job j = store.get(id);
  EXPECT_EQ(j.state, JobState::kRunning);
  ASSERT_TRUE(j.lease);
  EXPECT_EQ(j.lease->pid, child.pid());
  EXPECT_FALSE(JobStore::lease_alive(*j.lease));
  EXPECT_THAT(ids_of(store.stale()), ElementsAre(id));

  // The dead job's slot does not count: the limit of 1 lets the other job start.
  EXPECT_TRUE(store.try_start(other, limit_of(1)));

  EXPECT_TRUE(store.take_over(id));
  EXPECT_FALSE(store.take_over(id));
  j = store.get(id);
  ASSERT_TRUE(j.lease);
  EXPECT_EQ(j.lease->pid, ::getpid());
  EXPECT_TRUE(store.stale().empty());
  // The new owner's calls work.
  store.set_step(id, 0, StepState::kUndone, "rolled back");
  store.finish(id, JobState::kRolledBack, "the VM runs from the source disk");
  EXPECT_EQ(store.get(id).state, JobState::kRolledBack);
}

// Test that a job whose process was killed is stale even before the process is reaped, and that
// of several processes racing to take it over exactly one succeeds.
TEST_F(JobStoreTest, KilledOwnerIsTakenOverOnce) {
  std::int64_t id;
  {
    JobStore store = JobStore::open(path_);
    id = store.create(job_with({{"a", kStorage}}));
  }
  Pipe started, hold;
  Child owner([&] {
    hold.write.reset();
    JobStore store = JobStore::open(path_);
    put(started.write, store.try_start(id, limit_of(1)) ? 'S' : 'N');
    wait_for_eof(hold.read, Deadline::after(seconds(30)));
    return 0;
  });
  ASSERT_EQ(get(started.read, Deadline::after(seconds(20))), 'S');
  {
    JobStore store = JobStore::open(path_);
    EXPECT_TRUE(store.stale().empty());
    EXPECT_FALSE(store.take_over(id));
  }
  owner.kill(SIGKILL);
  {
    JobStore store = JobStore::open(path_);
    // Not reaped: a zombie is dead too.
    EXPECT_TRUE(wait_until(seconds(10), [&] { return !store.stale().empty(); }));
    EXPECT_THAT(ids_of(store.stale()), ElementsAre(id));
  }

  constexpr int kRacers = 4;
  Pipe go, results, release;
  std::vector<std::unique_ptr<Child>> racers;
  for (int i = 0; i < kRacers; ++i) {
    racers.push_back(std::make_unique<Child>([&] {
      go.write.reset();
      release.write.reset();
      JobStore store = JobStore::open(path_);
      wait_for_eof(go.read, Deadline::after(seconds(20)));
      put(results.write, store.take_over(id) ? 'T' : 'F');
      // The winner keeps its lease alive until the test is done looking.
      wait_for_eof(release.read, Deadline::after(seconds(30)));
      return 0;
    }));
  }
  go.write.reset();
  int taken = 0, refused = 0;
  for (int i = 0; i < kRacers; ++i) {
    auto c = get(results.read, Deadline::after(seconds(20)));
    ASSERT_TRUE(c) << "racer " << i << " did not answer";
    (*c == 'T' ? taken : refused)++;
  }
  EXPECT_EQ(taken, 1);
  EXPECT_EQ(refused, kRacers - 1);
  {
    JobStore store = JobStore::open(path_);
    EXPECT_TRUE(store.stale().empty());
    EXPECT_FALSE(store.take_over(id));
    Job j = store.get(id);
    ASSERT_TRUE(j.lease);
    EXPECT_NE(j.lease->pid, owner.pid());
  }
  release.write.reset();
  for (auto& r : racers) EXPECT_EQ(r->wait(), 0);
}

// Test that a process whose lease was taken over by another process gets an error from every
// owner call, naming the new owner.
TEST_F(JobStoreTest, LostLeaseThrows) {
  std::int64_t id;
  {
    JobStore store = JobStore::open(path_);
    id = store.create(job_with({{"a", kStorage}}));
    ASSERT_TRUE(store.try_start(id, limit_of(1)));
  }
  // Another process holds the lease now (a live owner's lease cannot be
  // taken over through the store: the child writes itself in directly).
  Pipe taken, release;
  Child rescuer([&] {
    release.write.reset();
    Lease own = JobStore::own_lease();
    raw_sql(path_, "UPDATE jobs SET lease_pid = " + std::to_string(own.pid) + ", lease_start = " +
                       std::to_string(own.pid_start) + " WHERE id = " + std::to_string(id));
    put(taken.write, 'T');
    JobStore store = JobStore::open(path_);
    wait_for_eof(release.read, Deadline::after(seconds(30)));
    store.finish(id, JobState::kRolledBack, "recovered");
    return 0;
  });
  ASSERT_EQ(get(taken.read, Deadline::after(seconds(20))), 'T');

  JobStore store = JobStore::open(path_);
  std::string expected = "job " + std::to_string(id) +
                         " is now handled by another vmshift process (pid " +
                         std::to_string(rescuer.pid()) + ")";
  std::vector<std::function<void()>> calls = {
      [&] { store.renew_lease(id); },
      [&] { store.set_step(id, 0, StepState::kDone); },
      [&] { store.set_progress(id, 1, 2, 3, std::nullopt); },
      [&] { store.set_pause(id, 5); },
      [&] { store.set_state_data(id, "{}"); },
      [&] { store.set_state(id, JobState::kCancelling); },
      [&] { store.finish(id, JobState::kCompleted, "done"); },
  };
  for (const auto& call : calls) {
    try {
      call();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
      EXPECT_EQ(std::string(e.what()), expected);
    }
  }
  // Nothing was changed by the refused calls.
  Job j = store.get(id);
  EXPECT_EQ(j.state, JobState::kRunning);
  EXPECT_EQ(j.steps[0].state, StepState::kPending);
  EXPECT_EQ(j.pause_ms, std::nullopt);

  release.write.reset();
  ASSERT_EQ(rescuer.wait(), 0);
  EXPECT_EQ(store.get(id).state, JobState::kRolledBack);
}

// Test that processes racing try_start under a limit of 2 start exactly 2 jobs, round after
// round.
TEST_F(JobStoreTest, ProcessesRaceForTwoSlots) {
  constexpr int kRounds = 3;
  constexpr int kRacers = 5;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string host = "host" + std::to_string(round);
    std::vector<std::int64_t> ids;
    {
      JobStore store = JobStore::open(path_);
      for (int i = 0; i < kRacers; ++i) ids.push_back(store.create(job_with({{host, kStorage}})));
    }
    Pipe go, results, release;
    std::vector<std::unique_ptr<Child>> racers;
    for (int i = 0; i < kRacers; ++i) {
      std::int64_t id = ids[static_cast<std::size_t>(i)];
      racers.push_back(std::make_unique<Child>([&, id] {
        go.write.reset();
        release.write.reset();
        JobStore store = JobStore::open(path_);
        wait_for_eof(go.read, Deadline::after(seconds(20)));
        // Keep trying (as a waiting vmshift does) until started or released.
        Deadline deadline = Deadline::after(seconds(30));
        while (!deadline.expired()) {
          if (store.try_start(id, limit_of(2))) {
            put(results.write, 'S');
            wait_for_eof(release.read, deadline);
            return 0;
          }
          pollfd p{.fd = release.read.get(), .events = POLLIN, .revents = 0};
          if (::poll(&p, 1, 20) > 0) return 0;  // released
        }
        return 1;
      }));
    }
    go.write.reset();
    int started = 0;
    while (get(results.read, Deadline::after(seconds(20)))) {
      if (++started == 2) break;
    }
    ASSERT_EQ(started, 2);
    // No third job starts while the children keep trying.
    EXPECT_FALSE(get(results.read, Deadline::after(std::chrono::milliseconds(500))));
    {
      JobStore store = JobStore::open(path_);
      int running = 0;
      for (std::int64_t id : ids) running += store.get(id).state == JobState::kRunning ? 1 : 0;
      EXPECT_EQ(running, 2);
      // First come, first served.
      EXPECT_EQ(store.get(ids[0]).state, JobState::kRunning);
      EXPECT_EQ(store.get(ids[1]).state, JobState::kRunning);
    }
    release.write.reset();
    for (auto& r : racers) EXPECT_EQ(r->wait(), 0);
  }
}

// Test that of several processes starting the same job exactly one succeeds.
TEST_F(JobStoreTest, ProcessesRaceForOneJob) {
  std::int64_t id;
  {
    JobStore store = JobStore::open(path_);
    id = store.create(job_with({{"a", kStorage}}));
  }
  constexpr int kRacers = 4;
  Pipe go, results, release;
  std::vector<std::unique_ptr<Child>> racers;
  for (int i = 0; i < kRacers; ++i) {
    racers.push_back(std::make_unique<Child>([&] {
      go.write.reset();
      release.write.reset();
      JobStore store = JobStore::open(path_);
      wait_for_eof(go.read, Deadline::after(seconds(20)));
      char result = 'F';
      try {
        if (store.try_start(id, limit_of(5))) result = 'S';
      } catch (const Error& e) {
        result = e.code() == ErrorCode::kFailedPrecondition ? 'N' : 'E';
      }
      put(results.write, result);
      wait_for_eof(release.read, Deadline::after(seconds(30)));
      return 0;
    }));
  }
  go.write.reset();
  std::multiset<char> answers;
  for (int i = 0; i < kRacers; ++i) {
    auto c = get(results.read, Deadline::after(seconds(20)));
    ASSERT_TRUE(c);
    answers.insert(*c);
  }
  EXPECT_EQ(answers.count('S'), 1u);
  EXPECT_EQ(answers.count('N'), static_cast<std::size_t>(kRacers - 1));
  release.write.reset();
  for (auto& r : racers) EXPECT_EQ(r->wait(), 0);
}

// Test that a job queued by a process that died does not hold back younger jobs forever.
TEST_F(JobStoreTest, QueuedJobOfDeadProcessDoesNotBlock) {
  std::int64_t running, orphan, young;
  {
    JobStore store = JobStore::open(path_);
    running = store.create(job_with({{"b", kStorage}}));
    ASSERT_TRUE(store.try_start(running, limit_of(1)));
  }
  Child waiter([&] {
    JobStore store = JobStore::open(path_);
    std::int64_t id = store.create(job_with({{"a", kStorage}, {"b", kStorage}}));
    return store.try_start(id, limit_of(1)) ? 1 : 0;
  });
  ASSERT_EQ(waiter.wait(), 0);
  JobStore store = JobStore::open(path_);
  orphan = store.list(1).front().id;
  EXPECT_EQ(store.get(orphan).state, JobState::kQueued);
  young = store.create(job_with({{"a", kStorage}}));
  EXPECT_TRUE(store.blocking(young).empty());
  EXPECT_TRUE(store.try_start(young, limit_of(1)));
}

// Test that only a failed job can be put back in the queue, that it keeps
// the state it saved, and that it then starts like any queued job.
TEST_F(JobStoreTest, ReopenAFailedJob) {
  JobStore store = JobStore::open(path_);
  std::int64_t id = store.create(job_with({{"a", kStorage}}));
  EXPECT_FALSE(store.reopen(id)) << "a queued job is not failed";
  ASSERT_TRUE(store.try_start(id, limit_of(1)));
  store.set_state_data(id, R"({"journal":1})");
  EXPECT_FALSE(store.reopen(id)) << "a running job is not failed";
  store.finish(id, JobState::kFailed, "the network went down");
  ASSERT_TRUE(store.reopen(id));
  Job j = store.get(id);
  EXPECT_EQ(j.state, JobState::kQueued);
  EXPECT_EQ(j.error, "");
  EXPECT_FALSE(j.ended.has_value());
  EXPECT_EQ(j.state_data, R"({"journal":1})");
  EXPECT_EQ(store.waiter(id), std::optional<std::int64_t>(::getpid()));
  EXPECT_TRUE(store.try_start(id, limit_of(1)));
  store.finish(id, JobState::kCompleted, "done");
  EXPECT_FALSE(store.reopen(id)) << "a completed job is not failed";
}

// Test that processes opening a job store that does not exist yet all at
// once (as `vmshift move-storage` and `vmshift jobs` in two shells do) all
// succeed: one creates it and switches it to WAL, the others wait their turn.
TEST_F(JobStoreTest, ProcessesOpenANewStoreAtOnce) {
  constexpr int kRounds = 10;
  constexpr int kOpeners = 6;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string path = dir_.file("race" + std::to_string(round) + "/jobs.db");
    Pipe go;
    std::vector<std::unique_ptr<Child>> openers;
    for (int i = 0; i < kOpeners; ++i) {
      openers.push_back(std::make_unique<Child>([&] {
        go.write.reset();
        wait_for_eof(go.read, Deadline::after(seconds(20)));
        JobStore store = JobStore::open(path);
        store.list();
        return 0;
      }));
    }
    go.write.reset();
    for (auto& o : openers) EXPECT_EQ(o->wait(), 0);
  }
}

// Test that a live owner's job is never stale, however long ago its lease
// was renewed (a renewal that lapsed, or a clock that jumped forward): no
// other process can take it over, and the owner's calls go on working.
TEST_F(JobStoreTest, LiveOwnerWithLapsedLeaseIsNotStale) {
  std::int64_t id;
  {
    JobStore store = JobStore::open(path_);
    id = store.create(job_with({{"a", kStorage}}));
    ASSERT_TRUE(store.try_start(id, limit_of(1)));
  }
  raw_sql(path_, "UPDATE jobs SET lease_expires_ms = 1 WHERE id = " + std::to_string(id));
  Child other([&] {
    JobStore store = JobStore::open(path_);
    if (!store.stale().empty()) return 5;
    if (store.take_over(id)) return 6;
    return 0;
  });
  EXPECT_EQ(other.wait(), 0) << "5: the job was stale; 6: it was taken over";
  JobStore store = JobStore::open(path_);
  EXPECT_TRUE(store.stale().empty());
  store.set_step(id, 0, StepState::kDone);
  Job j = store.get(id);
  ASSERT_TRUE(j.lease);
  EXPECT_EQ(j.lease->pid, ::getpid());
  EXPECT_GT(j.lease->expires, std::chrono::system_clock::now()) << "the call renewed the lease";
}

NewJob vm_job(const std::string& uuid, std::string vm = "vm") {
  NewJob j = job_with({{"a", kStorage}}, std::move(vm));
  j.vm_uuid = uuid;
  return j;
}

std::string refusal_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "not refused";
  return "";
}

// Test that a VM has one active job at a time: a second job of the same
// VM (by UUID, whatever its name) is refused at creation, naming the job
// that runs, while queued, running and cancelling; other VMs and jobs
// without a VM are not held back; once the job ends, a new one may start.
TEST_F(JobStoreTest, OneActiveJobPerVm) {
  JobStore store = JobStore::open(path_);
  const std::string uuid = "6f1c1e4e-4a52-4c5c-9d0b-0c6b2f1f0a01";
  std::int64_t first = store.create(vm_job(uuid, "web"));
  EXPECT_EQ(store.get(first).vm_uuid, uuid);
  std::string why = refusal_of([&] { store.create(vm_job(uuid, "web-renamed")); });
  EXPECT_THAT(why, HasSubstr(fmt::format("job {}", first)));
  EXPECT_THAT(why, HasSubstr("web"));
  EXPECT_THAT(why, HasSubstr("queued"));
  ASSERT_TRUE(store.try_start(first, limit_of(2)));
  why = refusal_of([&] { store.create(vm_job(uuid)); });
  EXPECT_THAT(why, HasSubstr("running"));
  store.set_state(first, JobState::kCancelling);
  why = refusal_of([&] { store.create(vm_job(uuid)); });
  EXPECT_THAT(why, HasSubstr("cancelling"));

  std::int64_t other_vm = store.create(vm_job("0b6c9c1a-0000-4000-8000-000000000002"));
  std::int64_t copy1 = store.create(vm_job(""));
  std::int64_t copy2 = store.create(vm_job(""));
  EXPECT_TRUE(store.try_start(other_vm, limit_of(4)));
  EXPECT_TRUE(store.try_start(copy1, limit_of(4)));
  EXPECT_TRUE(store.try_start(copy2, limit_of(4)));

  store.finish(first, JobState::kCancelled, "cancelled");
  std::int64_t again = store.create(vm_job(uuid));
  EXPECT_TRUE(store.try_start(again, limit_of(4)));
}

// Test that a queued job whose VM got another running job meanwhile (its
// waiter had died, so it did not hold the VM) is refused when it tries to
// start: it ends cancelled, naming the running job, and nothing runs twice.
TEST_F(JobStoreTest, QueuedJobOfABusyVmIsRefusedAtStart) {
  const std::string uuid = "qmp:/run/ci/vm1.qmp";
  std::int64_t orphan;
  {
    JobStore store = JobStore::open(path_);
    orphan = store.create(vm_job(uuid));
  }
  // The orphan's waiter is this process: make it a dead one.
  Child dead([&] {
    Lease own = JobStore::own_lease();
    raw_sql(path_, "UPDATE jobs SET waiter_pid = " + std::to_string(own.pid) +
                       ", waiter_start = " + std::to_string(own.pid_start));
    return 0;
  });
  ASSERT_EQ(dead.wait(), 0);
  JobStore store = JobStore::open(path_);
  std::int64_t running = store.create(vm_job(uuid));
  ASSERT_TRUE(store.try_start(running, limit_of(4)));

  std::string why = refusal_of([&] { store.try_start(orphan, limit_of(4)); });
  EXPECT_THAT(why, HasSubstr(fmt::format("job {}", running)));
  Job j = store.get(orphan);
  EXPECT_EQ(j.state, JobState::kCancelled);
  EXPECT_THAT(j.error, HasSubstr(fmt::format("job {}", running)));
  EXPECT_THAT(j.error, HasSubstr("nothing was changed"));
  EXPECT_EQ(store.get(running).state, JobState::kRunning);
}

// Test that a failed job cannot be put back in the queue while its VM has
// another active job.
TEST_F(JobStoreTest, ReopenIsRefusedWhileTheVmIsBusy) {
  const std::string uuid = "6f1c1e4e-4a52-4c5c-9d0b-0c6b2f1f0a03";
  JobStore store = JobStore::open(path_);
  std::int64_t failed = store.create(vm_job(uuid));
  ASSERT_TRUE(store.try_start(failed, limit_of(4)));
  store.finish(failed, JobState::kFailed, "copy failed");
  std::int64_t running = store.create(vm_job(uuid));
  ASSERT_TRUE(store.try_start(running, limit_of(4)));
  EXPECT_THAT(refusal_of([&] { store.reopen(failed); }), HasSubstr(fmt::format("job {}", running)));
  EXPECT_EQ(store.get(failed).state, JobState::kFailed);
}

// Test that a store of schema version 1 (no VM UUIDs) is upgraded in place:
// its jobs keep every field, with an empty UUID, and new jobs record one.
TEST_F(JobStoreTest, UpgradesAVersion1Store) {
  std::int64_t old_id;
  {
    JobStore store = JobStore::open(path_);
    old_id = store.create(job_with({{"a", kStorage}}, "old"));
  }
  raw_sql(path_,
          "DROP INDEX jobs_by_vm_uuid; ALTER TABLE jobs DROP COLUMN vm_uuid; "
          "PRAGMA user_version = 1");
  JobStore store = JobStore::open(path_);
  EXPECT_EQ(raw_query(path_, "PRAGMA user_version"), "2");
  Job old = store.get(old_id);
  EXPECT_EQ(old.vm, "old");
  EXPECT_EQ(old.vm_uuid, "");
  EXPECT_EQ(old.state, JobState::kQueued);
  std::int64_t id = store.create(vm_job("6f1c1e4e-4a52-4c5c-9d0b-0c6b2f1f0a04"));
  EXPECT_EQ(store.get(id).vm_uuid, "6f1c1e4e-4a52-4c5c-9d0b-0c6b2f1f0a04");
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// Sets the umask for a scope.
struct ScopedUmask {
  explicit ScopedUmask(mode_t mask) : old(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old); }
  mode_t old;
};

// Test that the database and its -wal and -shm files are 0600 whatever the
// umask, and that older files with looser modes are made 0600 on open.
TEST_F(JobStoreTest, DatabaseFilesArePrivate) {
  ScopedUmask umask(022);
  {
    JobStore store = JobStore::open(path_);
    store.create(job_with({}));
    for (const char* f : {"", "-wal", "-shm"}) EXPECT_EQ(mode_of(path_ + f), 0600u) << path_ << f;
  }
  for (const char* f : {"", "-wal", "-shm"}) ::chmod((path_ + f).c_str(), 0644);
  JobStore store = JobStore::open(path_);
  for (const char* f : {"", "-wal", "-shm"}) EXPECT_EQ(mode_of(path_ + f), 0600u) << path_ << f;
}

// Test that an existing store directory of this user with a looser mode is
// made 0700, and that one others may write to, or of another user, is
// refused with nothing created in it.
TEST_F(JobStoreTest, StoreDirectoryIsPrivate) {
  std::string loose = dir_.file("loose");
  ASSERT_EQ(::mkdir(loose.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(loose.c_str(), 0755), 0);
  { JobStore::open(loose + "/jobs.db"); }
  EXPECT_EQ(mode_of(loose), 0700u);

  std::string open_dir = dir_.file("everyone");
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  std::string why = refusal_of([&] { JobStore::open(open_dir + "/jobs.db"); });
  EXPECT_THAT(why, HasSubstr(open_dir));
  EXPECT_THAT(why, HasSubstr("others may write"));
  EXPECT_NE(::access((open_dir + "/jobs.db").c_str(), F_OK), 0);

  std::string theirs = dir_.file("theirs");
  ASSERT_EQ(::mkdir(theirs.c_str(), 0700), 0);
  // Only root can give a directory to another user (the test runs as root).
  ASSERT_EQ(::geteuid(), 0u) << "run as root to check a directory of another user";
  ASSERT_EQ(::chown(theirs.c_str(), 65534, 65534), 0);
  why = refusal_of([&] { JobStore::open(theirs + "/jobs.db"); });
  EXPECT_THAT(why, HasSubstr("belongs to uid 65534"));
  EXPECT_NE(::access((theirs + "/jobs.db").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace vmshift::core
