// Quick storage migration, quick migration and network migration on
// simulated hosts whose files are real (the real copy engine moves them):
// the steps in order, where the VM ends up after a failure at each step,
// and recovery after a process died at each phase.
#include "migrate/quick_migration.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "base/error.h"
#include "support/fake_host.h"
#include "support/fake_job.h"

namespace vmshift::migrate {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using testing::Events;
using testing::FakeHost;
using testing::FakeJob;
using testing::FakeVm;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

const std::string kBase = "/images/g1-vda.qcow2";
const std::string kOverlay = "/images/g1-vda.qcow2.vmshift-overlay.qcow2";
const std::string kDest = "/new/g1-vda.qcow2";
const std::string kDestOverlay = "/new/g1-vda.qcow2.vmshift-overlay.qcow2";
const std::string kState = "/images/g1.vmshift-state";
const std::string kDestState = "/new/g1.vmshift-state";

// A FakeJob that fails the step at a named checkpoint, as VMSHIFT_FAIL_AT does.
class FailingJob : public FakeJob {
 public:
  explicit FailingJob(std::string at = "") : at_(std::move(at)) {}
  void checkpoint(std::string_view point) override {
    FakeJob::checkpoint(point);
    if (point == at_) throw Error(ErrorCode::kCommandFailed, "injected failure at " + at_);
  }

 private:
  std::string at_;
};

// A job whose store cannot be written from a checkpoint on (locked past its
// deadline, disk full): every step and save_state throws from then on, as
// a job store's writes did. The migration fails at that checkpoint too.
class StoreBreaksJob : public FailingJob {
 public:
  explicit StoreBreaksJob(std::string at) : FailingJob(at), at_(std::move(at)) {}
  void checkpoint(std::string_view point) override {
    if (point == at_) broken = true;
    FailingJob::checkpoint(point);
  }
  void step(std::size_t index, StepState state, const std::string& detail) override {
    if (broken) throw Error(ErrorCode::kIo, "job store /state/jobs.db: database is locked");
    FailingJob::step(index, state, detail);
  }
  void save_state(const std::string& json) override {
    if (broken) throw Error(ErrorCode::kIo, "job store /state/jobs.db: database is locked");
    FailingJob::save_state(json);
  }
  bool broken = false;

 private:
  std::string at_;
};

class QuickTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_.vms["g1"] = FakeVm{.disks = {{"vda", kBase}}};
    src_.put_file(kBase, 3 << 20, 'b');
    for (FakeHost* h : {&src_, &dst_}) std::filesystem::create_directories(h->real("/new"));
    plan_.vm = "g1";
    plan_.source_host = "host1";
    plan_.dest_host = "host2";
    plan_.memory_bytes = 192 << 20;
    DiskMove m;
    m.target = "vda";
    m.source = kBase;
    m.dest = kDest;
    m.format = "qcow2";
    plan_.copies = {m};
  }
  Site site(FakeHost& h) {
    return Site{h, [&h](const std::string& p) { return h.file(p); }};
  }
  Result qsm(FakeJob& job) {
    Site s = site(src_), d = site(dst_);
    return run_qsm(s, d, plan_, options_, job);
  }
  bool on(FakeHost& h, const std::string& path) { return h.storage().exists(path); }

  Events events_;
  FakeHost src_{"host1", events_};
  FakeHost dst_{"host2", events_};
  LiveMigrationPlan plan_;
  LiveMigrationOptions options_;
};

// Test that a QSM to another host snapshots, copies the base, saves,
// moves overlay and state, restores there on the layered disk, merges,
// defines, and cleans the source, recording the pause.
TEST_F(QuickTest, QsmToAnotherHost) {
  FailingJob job;
  Result r = qsm(job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(
      events_,
      ElementsAre("host1 snapshot g1", "host1 save g1 " + kState, "host2 restore " + kDestState,
                  "host2 commit g1 vda", "host2 remove " + kDestOverlay, "host2 define g1",
                  "host1 undefine g1", "host2 remove " + kDestState, "host1 remove " + kState,
                  "host1 remove " + kOverlay, "host1 remove " + kBase));
  EXPECT_EQ(dst_.vms.at("g1").state, "running");
  EXPECT_EQ(dst_.vms.at("g1").disks.at("vda"), kDest);
  EXPECT_TRUE(dst_.vms.at("g1").backing.empty()) << "the overlay was not merged";
  EXPECT_TRUE(dst_.vms.at("g1").persistent);
  EXPECT_EQ(src_.vms.count("g1"), 0u);
  EXPECT_TRUE(on(dst_, kDest));
  EXPECT_FALSE(on(src_, kBase));
  EXPECT_TRUE(job.paused.has_value());
  EXPECT_THAT(r.message, HasSubstr("paused"));
  EXPECT_THAT(job.points, IsSupersetOf({"copied", "transferred", "restore", "restored"}));
}

// Test that a QSM to another host whose source definition cannot be
// removed keeps the source disks that definition still uses (it may be
// started by mistake, and vmshift never deletes a defined VM's files) and
// ends failed with a message that says where the VM runs, which old
// definition and files remain, and not to start it.
TEST_F(QuickTest, QsmWithAFailedUndefineKeepsTheSourceDisks) {
  src_.fail.insert("undefine");
  FailingJob job;
  Result r = qsm(job);
  EXPECT_EQ(r.outcome, Outcome::kFailed) << r.message;
  EXPECT_THAT(r.message, HasSubstr("runs on host 'host2'"));
  EXPECT_THAT(r.message, HasSubstr(kBase));
  EXPECT_THAT(r.message, HasSubstr("Do not start it there"));
  EXPECT_EQ(dst_.vms.at("g1").state, "running");
  EXPECT_EQ(dst_.vms.at("g1").disks.at("vda"), kDest);
  EXPECT_TRUE(on(src_, kBase)) << "the old definition's disk was deleted";
  EXPECT_THAT(events_, Not(Contains("host1 remove " + kBase)));
  EXPECT_EQ(job.last(8), StepState::kFailed);  // cleanup
}

// Test that a QSM whose copy fails because the destination's files are
// already there (made after the plan by someone else) leaves those files
// in place: the undo deletes only what this job created.
TEST_F(QuickTest, QsmUndoLeavesFilesItDidNotMake) {
  // The overlay's and the state's places on host2 are taken after the
  // plan: the base copies, then moving the overlay fails; the undo removes
  // the base's copy (this job's) and nothing else.
  dst_.put_file(kDestOverlay, 4096, 'y');
  dst_.put_file(kDestState, 4096, 'z');
  FailingJob job;
  Result r = qsm(job);
  EXPECT_EQ(r.outcome, Outcome::kFailed) << r.message;
  EXPECT_FALSE(on(dst_, kDest)) << "the job's own copy stayed";
  EXPECT_TRUE(on(dst_, kDestOverlay));
  EXPECT_TRUE(on(dst_, kDestState));
  EXPECT_THAT(events_, Not(Contains("host2 remove " + kDestOverlay)));
  EXPECT_THAT(events_, Not(Contains("host2 remove " + kDestState)));
  EXPECT_EQ(src_.vms.at("g1").state, "running");
  EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kBase);
  EXPECT_TRUE(on(src_, kBase));
}

// Test that a QSM on one host whose destination is the disk's own file
// (--force onto the location it already lives in) never deletes that file.
TEST_F(QuickTest, QsmOntoItsOwnFileNeverDeletesIt) {
  plan_.dest_host = "host1";
  plan_.copies[0].dest = kBase;
  plan_.copies[0].replace_existing = true;
  options_.force = true;
  Site s = site(src_);
  FailingJob job;
  Result r = run_qsm(s, s, plan_, options_, job);
  EXPECT_NE(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_TRUE(on(src_, kBase)) << r.message;
  EXPECT_THAT(events_, Not(Contains("host1 remove " + kBase)));
  EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kBase);
}

// Test that --force replaces a destination the plan checked (its identity
// recorded), and that a destination the plan did not check is refused
// before anything changes, and left in place.
TEST_F(QuickTest, QsmForceReplacesOnlyTheCheckedFile) {
  dst_.put_file(kDest, 8192, 'x');
  FailingJob refused;
  Result r = qsm(refused);
  EXPECT_EQ(r.outcome, Outcome::kFailed) << r.message;
  EXPECT_THAT(r.message, HasSubstr("left in place"));
  EXPECT_TRUE(on(dst_, kDest));
  EXPECT_THAT(events_, Not(Contains("host1 snapshot g1")));

  options_.force = true;
  plan_.copies[0].replace_existing = true;
  plan_.copies[0].replaces = dst_.storage().identity(kDest);
  FailingJob job;
  r = qsm(job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_EQ(dst_.vms.at("g1").disks.at("vda"), kDest);
}

// Test that a QSM on one host moves the disk without moving overlay or
// state, and keeps the VM's definition (updated).
TEST_F(QuickTest, QsmOnTheSameHost) {
  plan_.dest_host = "host1";
  Site s = site(src_);
  FailingJob job;
  Result r = run_qsm(s, s, plan_, options_, job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kDest);
  EXPECT_TRUE(src_.vms.at("g1").backing.empty());
  EXPECT_THAT(events_, Contains("host1 restore " + kState));
  EXPECT_THAT(events_, Not(Contains("host1 undefine g1")));
  EXPECT_FALSE(on(src_, kBase));
  EXPECT_FALSE(on(src_, kOverlay));
  EXPECT_FALSE(on(src_, kState));
  EXPECT_EQ(job.last(4), StepState::kSkipped);  // transfer
}

// Test that a failure before the save (the copy) leaves the VM running on
// the source on its original file, overlay merged back, copies removed.
TEST_F(QuickTest, FailureBeforeTheSaveMergesBack) {
  FailingJob job("copied");
  Result r = qsm(job);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("Copying the disks failed: injected failure at copied"));
  EXPECT_THAT(r.message, HasSubstr("The VM runs on host 'host1' on its original files"));
  EXPECT_EQ(src_.vms.at("g1").state, "running");
  EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kBase);
  EXPECT_TRUE(src_.vms.at("g1").backing.empty());
  EXPECT_FALSE(on(src_, kOverlay));
  EXPECT_FALSE(on(dst_, kDest));
  EXPECT_THAT(events_, Not(Contains(HasSubstr("save"))));
}

// Test that failures between the save and the restore (moving the state,
// the restore itself) restore the VM on the source, then merge back.
TEST_F(QuickTest, FailureAfterTheSaveRestoresOnTheSource) {
  for (std::string at : {"transferred", "restore"}) {
    SCOPED_TRACE(at);
    events_.clear();
    src_.vms["g1"] = FakeVm{.disks = {{"vda", kBase}}};
    dst_.vms.clear();
    FailingJob job(at);
    Result r = qsm(job);
    EXPECT_EQ(r.outcome, Outcome::kFailed);
    EXPECT_THAT(r.message, HasSubstr("The VM was restored and runs on host 'host1' on its "
                                     "original files"));
    EXPECT_EQ(src_.vms.at("g1").state, "running");
    EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kBase);
    EXPECT_THAT(events_, Contains("host1 restore " + kState));
    EXPECT_FALSE(on(src_, kState));
    EXPECT_FALSE(on(dst_, kDest));
    EXPECT_FALSE(on(dst_, kDestState));
    EXPECT_EQ(dst_.vms.count("g1"), 0u);
  }
}

// Test that when the job store cannot be written during the pause (the VM
// is saved, running nowhere) and the migration fails there, the undo still
// runs from what the migration holds in memory: the VM is restored on the
// source on its original file and nothing of it is left on the destination.
TEST_F(QuickTest, QsmUndoRunsWhenTheStoreCannotBeWritten) {
  for (std::string at : {"transferred", "restore"}) {
    SCOPED_TRACE(at);
    events_.clear();
    src_.vms["g1"] = FakeVm{.disks = {{"vda", kBase}}};
    dst_.vms.clear();
    StoreBreaksJob job(at);
    Result r;
    try {
      r = qsm(job);
    } catch (const Error& e) {
      FAIL() << "the undo did not run (" << e.what() << "); the VM is " << src_.vms.at("g1").state
             << " on host1";
    }
    EXPECT_EQ(r.outcome, Outcome::kFailed);
    EXPECT_THAT(r.message, HasSubstr("The VM was restored and runs on host 'host1'"));
    EXPECT_THAT(r.message, HasSubstr("could not be recorded"));
    EXPECT_EQ(src_.vms.at("g1").state, "running");
    EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kBase);
    EXPECT_TRUE(src_.vms.at("g1").backing.empty());
    EXPECT_FALSE(on(src_, kOverlay));
    EXPECT_FALSE(on(src_, kState));
    EXPECT_FALSE(on(dst_, kDest));
    EXPECT_EQ(dst_.vms.count("g1"), 0u);
  }
}

// Test that the recovery data a QSM saves holds no domain XML: the XML of
// a saved state is read with its secrets (graphics passwords) and stays in
// memory; recovery reads it from the state file again.
TEST_F(QuickTest, QsmSavesNoDomainXml) {
  FailingJob job;
  Result r = qsm(job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  ASSERT_FALSE(job.saved.empty());
  for (const auto& s : job.saved) EXPECT_THAT(s, Not(HasSubstr("<domain"))) << s;
}

// Test that a restore the destination refuses (a real failure, not an
// injected one) also ends with the VM running on the source.
TEST_F(QuickTest, RestoreRefusedByTheDestination) {
  dst_.fail.insert("restore");
  FailingJob job;
  Result r = qsm(job);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("Restoring the VM on host 'host2' failed: injected failure of "
                                   "restore"));
  EXPECT_EQ(src_.vms.at("g1").state, "running");
  EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kBase);
}

// Test that a snapshot that fails changes nothing, and that a save that
// fails leaves the VM running on the source, merged back.
TEST_F(QuickTest, SnapshotOrSaveFails) {
  src_.fail.insert("snapshot");
  FailingJob a;
  Result r = qsm(a);
  EXPECT_THAT(r.message, HasSubstr("The snapshot failed"));
  EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kBase);
  src_.fail = {"save"};
  FailingJob b;
  r = qsm(b);
  EXPECT_THAT(r.message, HasSubstr("Saving the VM's state failed"));
  EXPECT_EQ(src_.vms.at("g1").state, "running");
  EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kBase);
  EXPECT_FALSE(on(src_, kOverlay));
}

// Test recovery after the process died: before the pause the overlay is
// merged back; during the pause the VM is restored on the source; after
// the restore the job is finished on the destination.
TEST_F(QuickTest, Recovery) {
  // Died while copying: the VM runs on its overlay.
  FailingJob first("copied");
  src_.fail.insert("commit");  // keep the overlay in place as a dead process would
  qsm(first);
  src_.fail.clear();
  std::string during_copy;
  for (const auto& s : first.saved)
    if (s.find("\"phase\":\"copy\"") != std::string::npos) during_copy = s;
  ASSERT_FALSE(during_copy.empty());
  src_.vms["g1"] = FakeVm{.disks = {{"vda", kOverlay}}, .backing = {{"vda", kBase}}};
  src_.put_file(kOverlay, 4096);
  Site s = site(src_), d = site(dst_);
  FakeJob rec1;
  Result r = recover_qsm(s, d, during_copy, rec1);
  EXPECT_EQ(r.outcome, Outcome::kRolledBack) << r.message;
  EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kBase);
  EXPECT_FALSE(on(src_, kOverlay));

  // Died during the pause: saved, running nowhere.
  FailingJob second("transferred");
  src_.fail.insert("restore");  // the run cannot restore; recovery can
  qsm(second);
  src_.fail.clear();
  std::string saved;
  for (const auto& x : second.saved)
    if (x.find("\"phase\":\"saved\"") != std::string::npos) saved = x;
  ASSERT_FALSE(saved.empty());
  src_.vms["g1"].state = "shut off";
  src_.vms["g1"].disks = {{"vda", kOverlay}};
  src_.vms["g1"].backing = {{"vda", kBase}};
  src_.put_file(kOverlay, 4096);
  FakeJob rec2;
  r = recover_qsm(s, d, saved, rec2);
  EXPECT_EQ(r.outcome, Outcome::kRolledBack) << r.message;
  EXPECT_THAT(r.message, HasSubstr("The VM was restored on host 'host1'"));
  EXPECT_EQ(src_.vms.at("g1").state, "running");
  EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kBase);
}

// Test that a quick migration saves to the shared storage and restores on
// the destination; and that a restore that fails there restores the VM on
// the source.
TEST_F(QuickTest, QuickMigration) {
  const std::string disk = "/shared/g1-vda.qcow2", state = "/shared/g1.vmshift-state";
  plan_.copies.clear();
  plan_.shared = {{"vda", disk}};
  dst_.share("/shared", src_);
  src_.vms["g1"].disks = {{"vda", disk}};
  src_.put_file(disk, 4096);
  Site s = site(src_), d = site(dst_);
  FailingJob job;
  Result r = run_quick(s, d, plan_, options_, job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(events_,
              ElementsAre("host1 save g1 " + state, "host2 restore " + state, "host2 define g1",
                          "host1 undefine g1", "host1 remove " + state));
  EXPECT_EQ(dst_.vms.at("g1").state, "running");
  EXPECT_EQ(dst_.vms.at("g1").disks.at("vda"), disk);
  EXPECT_TRUE(job.paused.has_value());

  events_.clear();
  src_.vms["g1"] = dst_.vms.at("g1");
  dst_.vms.clear();
  dst_.fail.insert("restore");
  FailingJob failing;
  r = run_quick(s, d, plan_, options_, failing);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("The VM was restored on host 'host1'"));
  EXPECT_EQ(src_.vms.at("g1").state, "running");
  EXPECT_FALSE(on(src_, state));
  EXPECT_EQ(dst_.vms.count("g1"), 0u);
}

// Test that a quick migration whose restore fails while the job store
// cannot be written still restores the VM on the source, and that its
// recovery data holds no domain XML.
TEST_F(QuickTest, QuickUndoRunsWhenTheStoreCannotBeWritten) {
  const std::string disk = "/shared/g1-vda.qcow2", state = "/shared/g1.vmshift-state";
  plan_.copies.clear();
  plan_.shared = {{"vda", disk}};
  dst_.share("/shared", src_);
  src_.vms["g1"].disks = {{"vda", disk}};
  src_.put_file(disk, 4096);
  Site s = site(src_), d = site(dst_);
  StoreBreaksJob job("restore");
  Result r;
  try {
    r = run_quick(s, d, plan_, options_, job);
  } catch (const Error& e) {
    FAIL() << "the undo did not run (" << e.what() << "); the VM is " << src_.vms.at("g1").state
           << " on host1";
  }
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("The VM was restored on host 'host1'"));
  EXPECT_THAT(r.message, HasSubstr("could not be recorded"));
  EXPECT_EQ(src_.vms.at("g1").state, "running");
  EXPECT_FALSE(on(src_, state));
  EXPECT_EQ(dst_.vms.count("g1"), 0u);
  for (const auto& x : job.saved) EXPECT_THAT(x, Not(HasSubstr("<domain"))) << x;
}

// Test that a network migration copies, verifies, defines, removes the
// source and starts; and that a run stopped by a cancel removes its copies.
TEST_F(QuickTest, NetworkMigration) {
  src_.vms["g1"].state = "shut off";
  options_.start = true;
  Site s = site(src_), d = site(dst_);
  FakeJob job;
  Result r = run_network(s, d, plan_, options_, "", job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_EQ(dst_.vms.at("g1").disks.at("vda"), kDest);
  EXPECT_EQ(dst_.vms.at("g1").state, "running");
  EXPECT_EQ(src_.vms.count("g1"), 0u);
  EXPECT_FALSE(on(src_, kBase));
  EXPECT_TRUE(on(dst_, kDest));
  EXPECT_EQ(job.last(2), StepState::kDone);  // verify

  // A running VM is refused.
  src_.vms["g1"] = FakeVm{.disks = {{"vda", kBase}}};
  src_.put_file(kBase, 4096);
  dst_.vms.clear();
  FakeJob refused;
  r = run_network(s, d, plan_, options_, "", refused);
  EXPECT_THAT(r.message, HasSubstr("is running on host 'host1'; a network migration moves a "
                                   "shut-off VM"));
}

// A FakeJob that runs a hook when a step reaches a state: what someone
// else does to the VM meanwhile.
class HookJob : public FakeJob {
 public:
  HookJob(std::size_t index, StepState state, std::function<void()> hook)
      : index_(index), state_(state), hook_(std::move(hook)) {}
  void step(std::size_t index, StepState state, const std::string& detail) override {
    FakeJob::step(index, state, detail);
    if (index == index_ && state == state_) hook_();
  }

 private:
  std::size_t index_;
  StepState state_;
  std::function<void()> hook_;
};

// Test that a network migration on the VM's own host (new storage) keeps
// the VM defined there with its new paths, never undefines it, and removes
// the old files only after the copy was verified (kept with --keep-source).
TEST_F(QuickTest, NetworkMigrationOnTheSameHost) {
  plan_.dest_host = "host1";
  for (bool keep : {false, true}) {
    SCOPED_TRACE(keep ? "--keep-source" : "");
    events_.clear();
    src_.vms["g1"] = FakeVm{.state = "shut off", .disks = {{"vda", kBase}}};
    src_.put_file(kBase, 3 << 20, 'b');
    std::filesystem::remove(src_.real(kDest));
    options_.keep_source = keep;
    Site s = site(src_);
    FakeJob job;
    Result r = run_network(s, s, plan_, options_, "", job);
    ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
    ASSERT_EQ(src_.vms.count("g1"), 1u) << "the VM's definition was removed";
    EXPECT_EQ(src_.vms.at("g1").disks.at("vda"), kDest);
    EXPECT_EQ(src_.vms.at("g1").state, "shut off");
    EXPECT_THAT(events_, Not(Contains("host1 undefine g1")));
    EXPECT_TRUE(on(src_, kDest));
    EXPECT_EQ(on(src_, kBase), keep);
    EXPECT_EQ(job.last(2), StepState::kDone);  // verify
  }
}

// Test that a network migration whose VM was started on the source during
// the move (after the copy, or after the define on the destination) keeps
// every source file and the source definition, and fails saying so.
TEST_F(QuickTest, NetworkMigrationOfAVmStartedMeanwhile) {
  for (std::size_t when : {std::size_t{2}, std::size_t{3}}) {  // verify, define done
    SCOPED_TRACE(when);
    events_.clear();
    src_.vms["g1"] = FakeVm{.state = "shut off", .disks = {{"vda", kBase}}};
    src_.put_file(kBase, 3 << 20, 'b');
    dst_.vms.clear();
    std::filesystem::remove(dst_.real(kDest));
    Site s = site(src_), d = site(dst_);
    HookJob job(when, StepState::kDone, [&] { src_.vms.at("g1").state = "running"; });
    Result r = run_network(s, d, plan_, options_, "", job);
    EXPECT_EQ(r.outcome, Outcome::kFailed) << r.message;
    EXPECT_THAT(r.message, HasSubstr("VM 'g1' is running on host 'host1' again"));
    EXPECT_TRUE(on(src_, kBase)) << "a file of the running VM was deleted";
    EXPECT_EQ(src_.vms.count("g1"), 1u);
    EXPECT_THAT(events_, Not(Contains("host1 undefine g1")));
    EXPECT_THAT(events_, Not(Contains("host1 remove " + kBase)));
    EXPECT_EQ(dst_.vms.count("g1"), 0u) << "the stale definition on host2 stays";
    EXPECT_FALSE(on(dst_, kDest)) << "the out-of-date copy stays";
    EXPECT_THAT(job.saved.back(), HasSubstr("\"phase\":\"copy\""))
        << "a resume would not copy again";
  }
}

// Test that a network migration of a VM with a managed-save state to
// another host moves the state with the disks, and removes the source's
// definition (libvirt refuses while a saved state exists, so the state,
// copied and verified, goes first).
TEST_F(QuickTest, NetworkMigrationOfASavedVm) {
  const std::string saved = "/var/lib/libvirt/qemu/save/g1.save";
  src_.vms["g1"].state = "shut off";
  src_.put_file(saved, 1 << 20, 's');
  std::filesystem::create_directories(dst_.real("/var/lib/libvirt/qemu/save"));
  Site s = site(src_), d = site(dst_);
  FakeJob job;
  Result r = run_network(s, d, plan_, options_, "", job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(r.message, Not(HasSubstr("stays")));
  EXPECT_EQ(src_.vms.count("g1"), 0u);
  EXPECT_FALSE(on(src_, saved));
  EXPECT_FALSE(on(src_, kBase));
  EXPECT_TRUE(on(dst_, saved));

  // On its own host a saved VM is refused: its state holds the old paths.
  plan_.dest_host = "host1";
  src_.vms["g1"] = FakeVm{.state = "shut off", .disks = {{"vda", kBase}}};
  src_.put_file(kBase, 4096);
  src_.put_file(saved, 1 << 20, 's');
  FakeJob same;
  r = run_network(s, s, plan_, options_, "", same);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("has a saved state"));
  EXPECT_TRUE(on(src_, kBase));
  EXPECT_TRUE(on(src_, saved));
}

// Test that a quick migration whose source definition cannot be removed
// does not report success: the VM runs on host2, host1 still has a
// definition on the same shared disks, and the message says not to start
// it there.
TEST_F(QuickTest, QuickMigrationWithAFailedUndefine) {
  const std::string disk = "/shared/g1-vda.qcow2";
  plan_.copies.clear();
  plan_.shared = {{"vda", disk}};
  dst_.share("/shared", src_);
  src_.vms["g1"].disks = {{"vda", disk}};
  src_.put_file(disk, 4096);
  src_.fail.insert("undefine");
  Site s = site(src_), d = site(dst_);
  FailingJob job;
  Result r = run_quick(s, d, plan_, options_, job);
  EXPECT_EQ(r.outcome, Outcome::kFailed) << r.message;
  EXPECT_THAT(r.message, HasSubstr("runs on host 'host2'"));
  EXPECT_THAT(r.message, HasSubstr("host 'host1' still has a definition of VM 'g1' on the same "
                                   "disks (/shared/g1-vda.qcow2)"));
  EXPECT_THAT(r.message, HasSubstr("Do not start it there"));
  EXPECT_EQ(dst_.vms.at("g1").state, "running");
  EXPECT_EQ(job.last(4), StepState::kFailed);  // cleanup
}

}  // namespace
}  // namespace vmshift::migrate
