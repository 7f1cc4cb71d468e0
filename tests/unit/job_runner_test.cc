// The job runner's dispatch through the JobKind registry: which kind runs
// a job, the slots each kind holds, recovery of a job whose process died
// per kind, an unexpected error's recovery, and an unknown type. Jobs run
// in a real job store, on fake kinds or on the real copy kind over
// FakeHosts.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>

#include "base/error.h"
#include "core/runner.h"
#include "migrate/copy_files.h"
#include "migrate/live_migration.h"
#include "migrate/live_storage.h"
#include "migrate/quick_migration.h"
#include "support/fake_host.h"
#include "support/temp_dir.h"

namespace vmshift::core {
namespace {

using migrate::Kind;
using migrate::Limit;
using migrate::Side;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using vmshift::testing::Events;
using vmshift::testing::FakeHost;
using vmshift::testing::TempDir;

void raw_sql(const std::string& path, const std::string& sql) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  sqlite3_busy_timeout(db.get(), 10'000);
  ASSERT_EQ(sqlite3_exec(db.get(), sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db.get());
}

// A FakeHost as a site: its files are real files under its root.
class FakeSite : public migrate::OpenSite {
 public:
  explicit FakeSite(FakeHost& host)
      : site_{host, [&host](const std::string& path) { return host.file(path); }} {}
  migrate::Site& site() override { return site_; }

 private:
  migrate::Site site_;
};

// JobEnv on two FakeHosts; the checks pass unless told otherwise.
class FakeEnv : public migrate::JobEnv {
 public:
  FakeEnv() {
    host1.peer = &host2;
    host2.peer = &host1;
  }
  std::unique_ptr<migrate::OpenSite> open_site(const std::string& host) override {
    opened.push_back(host);
    if (host == "host1") return std::make_unique<FakeSite>(host1);
    if (host == "host2") return std::make_unique<FakeSite>(host2);
    throw Error(ErrorCode::kNotFound, fmt::format("no host '{}'", host));
  }
  std::unique_ptr<guest::Guest> open_guest(const GuestSpec& spec) override {
    throw Error(ErrorCode::kNotFound, fmt::format("no guest '{}'", spec.vm));
  }
  std::map<std::string, std::string> files_in_use(const std::string&, const std::string&) override {
    return in_use;
  }
  migrate::LiveStoragePlan plan_storage_move(guest::Guest&, const GuestSpec&,
                                             const migrate::LiveStorageOptions&) override {
    throw Error(ErrorCode::kFailedPrecondition, "no storage move here");
  }
  migrate::Recheck check_migration(const std::string&, const std::string&,
                                   const migrate::LiveMigrationOptions&) override {
    return recheck;
  }

  Events events;
  FakeHost host1{"host1", events};
  FakeHost host2{"host2", events};
  std::map<std::string, std::string> in_use;
  migrate::Recheck recheck;
  std::vector<std::string> opened;
};

// What the fake kinds were asked to do: "run qsm 3", "recover live 4".
std::vector<std::string> calls;

// A kind as the real one of that name (steps, slots, resume), whose run
// and recover only record that they were called.
migrate::JobKind fake_kind(Kind k) {
  migrate::JobKind kind = migrate::job_kind(k);
  std::string name(kind.name());
  kind.run = [name](const migrate::JobRecord& job, migrate::JobEnv&, migrate::JobContext& ctx) {
    calls.push_back(fmt::format("run {} {}", name, job.id));
    ctx.step(0, migrate::StepState::kDone, "ran");
    return migrate::Result{migrate::Outcome::kCompleted, "ran " + name};
  };
  if (kind.recover)
    kind.recover = [name](const migrate::JobRecord& job, migrate::JobEnv&, migrate::JobContext&) {
      calls.push_back(fmt::format("recover {} {} {}", name, job.id, job.state));
      return migrate::Result{migrate::Outcome::kRolledBack, "recovered " + name};
    };
  return kind;
}

// A registry of fake kinds, by type.
class FakeKinds {
 public:
  FakeKinds() {
    for (Kind k : migrate::all_kinds()) kinds_.emplace(migrate::kind_name(k), fake_kind(k));
  }
  migrate::JobKind& operator[](std::string_view type) { return kinds_.at(std::string(type)); }
  KindLookup lookup() {
    return [this](std::string_view type) -> const migrate::JobKind* {
      auto it = kinds_.find(std::string(type));
      return it == kinds_.end() ? nullptr : &it->second;
    };
  }

 private:
  std::map<std::string, migrate::JobKind> kinds_;
};

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override { calls.clear(); }

  // A queued job of that type between host1 and host2, as its kind makes it.
  std::int64_t queue(const std::string& type, const std::string& params = "{}") {
    const migrate::JobKind* kind = migrate::find_job_kind(type);
    NewJob j{.vm = "g1",
             .vm_uuid = type == "copy" ? "" : "uuid-" + std::to_string(++vms_),
             .type = type,
             .source_host = "host1",
             .dest_host = "host2",
             .slots = kind != nullptr ? slots_for(*kind, "host1", "host2") : std::vector<Slot>{},
             .steps = kind != nullptr ? kind->steps : std::vector<std::string>{"check"},
             .params = params};
    return store_.create(j);
  }
  // A job of that type whose process died while it ran, having saved `state`.
  std::int64_t stale(const std::string& type, const std::string& state) {
    std::int64_t id = queue(type);
    EXPECT_TRUE(store_.try_start(id, limits_));
    if (!state.empty()) store_.set_state_data(id, state);
    raw_sql(path_, "UPDATE jobs SET lease_pid = 0 WHERE id = " + std::to_string(id));
    return id;
  }
  JobOutcome run(std::int64_t id, const KindLookup& kinds) {
    Observer quiet;
    return run_job(path_, id, Runtime{env_, limits_, kinds}, quiet, Deadline::after(seconds(30)));
  }

  TempDir dir_{"vmshift-job-runner"};
  std::string path_ = dir_.file("state/jobs.db");
  JobStore store_ = JobStore::open(path_);
  LimitFn limits_ = [](const std::string&, LimitClass) { return 2; };
  FakeEnv env_;
  FakeKinds fakes_;
  int vms_ = 0;
};

// Test that every kind has its name, its own steps, and that the
// registry finds it by name and nothing else.
TEST(JobKinds, RegistryHasEveryKindOnce) {
  const std::map<Kind, std::vector<std::string>> steps = {
      {Kind::kLiveStorage, migrate::live_storage_steps()},
      {Kind::kLive, migrate::live_migration_steps()},
      {Kind::kLiveVsm, migrate::live_migration_steps()},
      {Kind::kQsm, migrate::qsm_steps()},
      {Kind::kQuick, migrate::quick_steps()},
      {Kind::kNetwork, migrate::network_steps()},
      {Kind::kCopy, migrate::copy_job_steps()},
  };
  ASSERT_EQ(migrate::all_kinds().size(), steps.size());
  for (Kind k : migrate::all_kinds()) {
    const migrate::JobKind& kind = migrate::job_kind(k);
    EXPECT_EQ(kind.id, k);
    EXPECT_EQ(kind.steps, steps.at(k)) << kind.name();
    EXPECT_EQ(migrate::find_job_kind(kind.name()), &kind);
    EXPECT_TRUE(kind.run) << kind.name();
    // A kind either recovers a dead job or resumes it.
    EXPECT_NE(static_cast<bool>(kind.recover), kind.resumable()) << kind.name();
  }
  EXPECT_EQ(migrate::find_job_kind("bogus"), nullptr);
  EXPECT_EQ(migrate::find_job_kind(""), nullptr);
}

// Test that each kind holds the slots it held before the registry:
// live-storage one storage slot on its host; qsm, network and copy a
// storage slot on both hosts; live and quick a live slot on both; live-vsm
// both of each.
TEST(JobKinds, SlotsOfEachKind) {
  using S = std::vector<Slot>;
  const std::map<std::string, S> want = {
      {"live-storage", S{{"a", LimitClass::kStorage}}},
      {"qsm", S{{"a", LimitClass::kStorage}, {"b", LimitClass::kStorage}}},
      {"network", S{{"a", LimitClass::kStorage}, {"b", LimitClass::kStorage}}},
      {"copy", S{{"a", LimitClass::kStorage}, {"b", LimitClass::kStorage}}},
      {"live", S{{"a", LimitClass::kLive}, {"b", LimitClass::kLive}}},
      {"quick", S{{"a", LimitClass::kLive}, {"b", LimitClass::kLive}}},
      {"live-vsm", S{{"a", LimitClass::kLive},
                     {"b", LimitClass::kLive},
                     {"a", LimitClass::kStorage},
                     {"b", LimitClass::kStorage}}},
  };
  for (Kind k : migrate::all_kinds()) {
    std::string name(migrate::kind_name(k));
    EXPECT_EQ(slots_for(name, "a", "b"), want.at(name)) << name;
    EXPECT_EQ(slots_for(migrate::job_kind(k), "a", "b"), want.at(name)) << name;
  }
  EXPECT_THROW(slots_for("bogus", "a", "b"), Error);
}

// Test that only copies and network migrations resume.
TEST(JobKinds, ResumableKinds) {
  EXPECT_TRUE(resumable("copy"));
  EXPECT_TRUE(resumable("network"));
  for (const char* t : {"live-storage", "live", "live-vsm", "qsm", "quick", "bogus", ""})
    EXPECT_FALSE(resumable(t)) << t;
}

// Test that the live kinds, and only they, tell the memory rate a job
// measured, from their saved state.
TEST(JobKinds, MemoryRateOfLiveKinds) {
  for (Kind k : migrate::all_kinds()) {
    const migrate::JobKind& kind = migrate::job_kind(k);
    bool live = k == Kind::kLive || k == Kind::kLiveVsm;
    ASSERT_EQ(static_cast<bool>(kind.memory_rate), live) << kind.name();
    if (!live) continue;
    EXPECT_EQ(kind.memory_rate(R"({"phase":"done","memory_bps":5000})"), 5000.0);
    EXPECT_EQ(kind.memory_rate(R"({"phase":"done","memory_bps":0})"), std::nullopt);
    EXPECT_EQ(kind.memory_rate(R"({"phase":"done"})"), std::nullopt);
    EXPECT_EQ(kind.memory_rate("not json"), std::nullopt);
  }
}

// Test that the kinds name the VM's files from the plan (live types) or
// the last recovery data (live-storage), before and after the switch.
TEST(JobKinds, FilesOfAJob) {
  migrate::LiveMigrationPlan plan;
  plan.copies.push_back({.target = "vda", .source = "/a/vda.qcow2", .dest = "/b/vda.qcow2"});
  plan.shared["vdb"] = "/shared/vdb.qcow2";
  migrate::JobRecord job{.params = migrate::migration_params(plan, {}).dump()};
  for (const char* t : {"live", "live-vsm", "qsm", "quick", "network"}) {
    const migrate::JobKind& kind = *migrate::find_job_kind(t);
    EXPECT_THAT(kind.files(job, false),
                ElementsAre("vda '/a/vda.qcow2'", "vdb '/shared/vdb.qcow2' (shared)"))
        << t;
    EXPECT_THAT(kind.files(job, true),
                ElementsAre("vda '/b/vda.qcow2'", "vdb '/shared/vdb.qcow2' (shared)"))
        << t;
  }
  migrate::JobRecord storage{
      .state = R"({"disks":[{"target":"vda","source":"/a/1","dest":"/b/1","pivoted":true},)"
               R"({"target":"vdb","source":"/a/2","dest":"/b/2","pivoted":false}]})"};
  EXPECT_THAT(migrate::job_kind(Kind::kLiveStorage).files(storage, false),
              ElementsAre("vda '/b/1'", "vdb '/a/2'"));
  EXPECT_FALSE(migrate::job_kind(Kind::kCopy).files);
}

// Test that a job runs through the kind of its type, with the steps of
// that kind, and ends as the kind's run says.
TEST_F(JobRunnerTest, DispatchesEachTypeToItsKind) {
  for (Kind k : migrate::all_kinds()) {
    std::string name(migrate::kind_name(k));
    calls.clear();
    std::int64_t id = queue(name);
    JobOutcome o = run(id, fakes_.lookup());
    EXPECT_EQ(o.state, JobState::kCompleted) << name << ": " << o.message;
    EXPECT_EQ(o.message, "ran " + name);
    EXPECT_THAT(calls, ElementsAre(fmt::format("run {} {}", name, id)));
    Job j = store_.get(id);
    EXPECT_EQ(j.state, JobState::kCompleted);
    ASSERT_EQ(j.steps.size(), migrate::job_kind(k).steps.size()) << name;
    EXPECT_EQ(j.steps[0].state, StepState::kDone);
  }
}

// Test that a job of a type no kind runs fails at once, naming the job
// and its type, and that nothing runs.
TEST_F(JobRunnerTest, UnknownTypeFailsNamingTheJob) {
  std::int64_t id = queue("teleport");
  JobOutcome o = run(id, fakes_.lookup());
  EXPECT_EQ(o.state, JobState::kFailed);
  EXPECT_THAT(o.message, HasSubstr(fmt::format("job {}", id)));
  EXPECT_THAT(o.message, HasSubstr("unknown job type 'teleport'"));
  EXPECT_THAT(o.message, HasSubstr("live-storage"));  // the known ones
  EXPECT_TRUE(calls.empty());
  EXPECT_EQ(store_.get(id).state, JobState::kFailed);
}

// Test that when a kind's run throws, the runner recovers the job through
// that kind's recover, with the state the run reported last.
TEST_F(JobRunnerTest, UnexpectedErrorRecoversThroughTheKind) {
  fakes_["qsm"].run = [](const migrate::JobRecord&, migrate::JobEnv&, migrate::JobContext& ctx) {
    ctx.save_state(R"({"phase":"save"})");
    throw std::runtime_error("boom");
    return migrate::Result{};
  };
  std::int64_t id = queue("qsm");
  JobOutcome o = run(id, fakes_.lookup());
  EXPECT_EQ(o.state, JobState::kFailed);
  EXPECT_EQ(o.message, "Unexpected error: boom. Recovery: recovered qsm");
  EXPECT_THAT(calls, ElementsAre(fmt::format(R"(recover qsm {} {{"phase":"save"}})", id)));
}

// Test that a resumable kind whose run throws is not undone: the message
// says `vmshift jobs resume` continues it.
TEST_F(JobRunnerTest, UnexpectedErrorOfAResumableKindKeepsItsCopies) {
  fakes_["copy"].run = [](const migrate::JobRecord&, migrate::JobEnv&,
                          migrate::JobContext&) -> migrate::Result {
    throw Error(ErrorCode::kIo, "disk gone");
  };
  std::int64_t id = queue("copy");
  JobOutcome o = run(id, fakes_.lookup());
  EXPECT_EQ(o.state, JobState::kFailed);
  EXPECT_EQ(o.message,
            fmt::format("Unexpected error: disk gone; recovery failed too: nothing to undo; "
                        "`vmshift jobs resume {}` continues. The VM and its files may be mid-way; "
                        "`vmshift jobs show {}` lists the steps that ran.",
                        id, id));
  EXPECT_TRUE(calls.empty());
}

// Test that recovery of a dead job with saved state runs the recover of
// that job's kind, and records its outcome.
TEST_F(JobRunnerTest, StaleJobIsRecoveredByItsKind) {
  for (const char* t : {"live-storage", "live", "live-vsm", "qsm", "quick"}) {
    calls.clear();
    std::int64_t id = stale(t, R"({"phase":"copy"})");
    std::vector<std::string> lines =
        recover_stale_jobs(store_, Runtime{env_, limits_, fakes_.lookup()});
    EXPECT_THAT(calls, ElementsAre(fmt::format(R"(recover {} {} {{"phase":"copy"}})", t, id)));
    EXPECT_THAT(lines, ElementsAre(fmt::format("job {} ({} of g1) recovered, rolled-back: "
                                               "recovered {}",
                                               id, t, t)));
    Job j = store_.get(id);
    EXPECT_EQ(j.state, JobState::kRolledBack) << t;
    EXPECT_EQ(j.error, std::string("recovered ") + t);
  }
}

// Test that a dead job that saved nothing is rolled back without asking
// its kind: it changed nothing.
TEST_F(JobRunnerTest, StaleJobWithoutStateIsRolledBack) {
  for (const char* t : {"live-storage", "live", "qsm"}) {
    for (const std::string& state : {std::string(), std::string("{}")}) {
      std::int64_t id = stale(t, state);
      std::vector<std::string> lines =
          recover_stale_jobs(store_, Runtime{env_, limits_, fakes_.lookup()});
      EXPECT_THAT(lines,
                  ElementsAre(fmt::format("job {} ({} of g1): its vmshift process died before it "
                                          "changed anything; nothing was changed",
                                          id, t)));
      EXPECT_EQ(store_.get(id).state, JobState::kRolledBack);
    }
  }
  EXPECT_TRUE(calls.empty());
}

// Test that a dead copy or network migration is not undone: it fails,
// resumable, with the chunks its journals record as copied (parsed by
// the real kinds).
TEST_F(JobRunnerTest, StaleCopyAndNetworkJobsFailResumable) {
  transfer::Journal journal;
  journal.chunk_size = 1 << 20;
  journal.length = 5 << 20;
  journal.done = {{0, 11}, {1, 22}};
  std::string state = Json::object()
                          .set("files", Json::array().push(codec::encode(migrate::FileCopy{
                                            .from = "/a/x", .to = "/b/x", .journal = journal})))
                          .dump();
  for (const auto& [type, what] :
       std::map<std::string, std::string>{{"copy", "copy"}, {"network", "migration"}}) {
    std::int64_t id = stale(type, state);
    std::vector<std::string> lines = recover_stale_jobs(store_, Runtime{env_, limits_});
    std::string msg = fmt::format(
        "its vmshift process died after 2 of 5 chunks were copied; the source is unchanged; "
        "`vmshift jobs resume {}` continues the {}",
        id, what);
    EXPECT_THAT(lines, ElementsAre(fmt::format("job {} ({} of g1): {}", id, type, msg)));
    Job j = store_.get(id);
    EXPECT_EQ(j.state, JobState::kFailed);
    EXPECT_EQ(j.error, msg);
  }
}

// Test that a dead job of a type no kind knows is left for a later
// recovery, with a line naming it.
TEST_F(JobRunnerTest, StaleJobOfUnknownTypeIsLeftAlone) {
  std::int64_t id = stale("teleport", R"({"phase":"copy"})");
  std::vector<std::string> lines =
      recover_stale_jobs(store_, Runtime{env_, limits_, fakes_.lookup()});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr(fmt::format("job {} (teleport of g1): its vmshift process died "
                                              "and recovery cannot proceed now",
                                              id)));
  EXPECT_THAT(lines[0], HasSubstr("unknown job type 'teleport'"));
  EXPECT_EQ(store_.get(id).state, JobState::kRunning);
}

// Test that a copy job runs through the real copy kind on the hosts the
// environment opens: the file arrives, checked.
TEST_F(JobRunnerTest, CopyJobRunsOnTheEnvironmentsHosts) {
  env_.host1.put_file("/a/disk.img", 3 << 20);
  std::filesystem::create_directories(env_.host2.real("/b"));
  migrate::CopyJobOptions o{.from_host = "host1",
                            .from_path = "/a/disk.img",
                            .to_host = "host2",
                            .to_path = "/b/disk.img",
                            .chunk_size = 1 << 20,
                            .verify = true};
  std::int64_t id = create_copy_job(store_, o);
  Observer quiet;
  JobOutcome out = run_job(path_, id, Runtime{env_, limits_}, quiet, Deadline::after(seconds(60)));
  EXPECT_EQ(out.state, JobState::kCompleted) << out.message;
  EXPECT_THAT(env_.opened, ElementsAre("host1", "host2"));
  std::ifstream copy(env_.host2.real("/b/disk.img"), std::ios::binary | std::ios::ate);
  EXPECT_EQ(copy.tellg(), 3 << 20);
  Job j = store_.get(id);
  EXPECT_EQ(j.type, "copy");
  EXPECT_EQ(j.slots, slots_for("copy", "host1", "host2"));
}

// Test that a migration whose checks fail when its queued job starts is
// refused by its kind before any host is opened, saying why.
TEST_F(JobRunnerTest, MigrationRefusedWhenTheChecksFailAgain) {
  migrate::LiveMigrationPlan plan;
  plan.vm = "g1";
  plan.source_host = "host1";
  plan.dest_host = "host2";
  env_.recheck = {std::nullopt, "memory: not enough"};
  for (const char* t : {"live", "qsm", "quick", "network"}) {
    env_.opened.clear();
    std::int64_t id = create_live_migration_job(store_, t, plan, fmt::format("uuid-{}", t), {});
    Observer quiet;
    JobOutcome o = run_job(path_, id, Runtime{env_, limits_}, quiet, Deadline::after(seconds(30)));
    EXPECT_EQ(o.state, JobState::kFailed) << t;
    EXPECT_EQ(o.message,
              "Refused: memory: not enough. Nothing was changed; the VM stays on host 'host1'.");
    EXPECT_TRUE(env_.opened.empty()) << t;
    Job j = store_.get(id);
    EXPECT_EQ(j.steps[0].state, StepState::kFailed);
    EXPECT_EQ(j.steps[0].detail, "memory: not enough");
  }
}

}  // namespace
}  // namespace vmshift::core
