// run_live_migration's steps and recover_live_migration, on fake hosts and
// a scripted migration: what is created, started, aborted, verified and
// deleted, and what the job says, on every path.
#include "migrate/live_migration.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "migrate/created.h"
#include "support/fake_host.h"
#include "support/fake_job.h"

namespace vmshift::migrate {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using testing::FakeJob;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using namespace std::chrono_literals;

using testing::Events;
using testing::FakeHost;
using testing::FakeVm;

class LiveMigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_.peer = &dst_;
    src_.vms["g1"] = FakeVm{.disks = {{"vda", "/local/g1-vda.qcow2"}}};
    src_.put_file("/local/g1-vda.qcow2", 4096);
    dst_.completed = hosts::CompletedMigration{.downtime_ms = 180,
                                               .elapsed_ms = 2000,
                                               .data_total = 1000,
                                               .data_processed = 900,
                                               .memory_bps = 300,
                                               .iteration = 3};
    plan_.vm = "g1";
    plan_.source_host = "host1";
    plan_.dest_host = "host2";
    plan_.dest_peer_uri = "qemu+tcp://host2/system";
    plan_.migrate_uri = "tcp://10.77.0.2";
    plan_.memory_bytes = 192 << 20;
  }
  void copy_vda(const std::string& dest) {
    DiskMove m;
    m.target = "vda";
    m.source = "/local/g1-vda.qcow2";
    m.dest = dest;
    m.format = "qcow2";
    m.capacity = 64 << 20;
    m.need = 10 << 20;
    plan_.copies = {m};
  }
  Result run() { return run_live_migration(src_, dst_, plan_, options_, job_); }

  Events events_;
  FakeHost src_{"host1", events_};
  FakeHost dst_{"host2", events_};
  LiveMigrationPlan plan_;
  LiveMigrationOptions options_;
  FakeJob job_;
};

// Test that a live migration on shared storage starts, records the pause
// from the destination's statistics, verifies and deletes nothing.
TEST_F(LiveMigrationTest, SharedStorageCompletes) {
  plan_.shared = {{"vda", "/shared/g1-vda.qcow2"}};
  src_.vms["g1"].disks = {{"vda", "/shared/g1-vda.qcow2"}};
  Result r = run();
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(r.message, HasSubstr("live migration of g1 from host 'host1' to host 'host2'"));
  EXPECT_THAT(r.message, HasSubstr("pause 180 ms"));
  EXPECT_EQ(job_.paused, 180ms);
  EXPECT_THAT(events_, ElementsAre("host1 start"));
  ASSERT_EQ(src_.requests.size(), 1u);
  const hosts::MigrationRequest& req = src_.requests[0];
  EXPECT_EQ(req.dest_peer_uri, "qemu+tcp://host2/system");
  EXPECT_EQ(req.migrate_uri, "tcp://10.77.0.2");
  EXPECT_TRUE(req.copy_disks.empty());
  EXPECT_TRUE(req.dest_xml.empty());
  EXPECT_TRUE(req.shared_storage_vouched);
  EXPECT_EQ(job_.last(4), StepState::kSkipped);  // cleanup: nothing to delete
  EXPECT_EQ(job_.last_done, 900u);
  EXPECT_THAT(job_.saved.back(), HasSubstr("\"phase\":\"done\""));
  EXPECT_THAT(job_.saved.back(), HasSubstr("\"memory_bps\":300"));
}

// Test that a live VSM creates the destination image first, passes the
// rewritten definition when the path changes, and deletes the source file
// only after the VM is verified on the destination.
TEST_F(LiveMigrationTest, LiveVsmCreatesCopiesAndCleansUp) {
  copy_vda("/other/g1-vda.qcow2");
  Result r = run();
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(events_, ElementsAre("host2 create /other/g1-vda.qcow2 qcow2 67108864", "host1 start",
                                   "host1 remove /local/g1-vda.qcow2"));
  const hosts::MigrationRequest& req = src_.requests.at(0);
  EXPECT_EQ(req.copy_disks, std::vector<std::string>{"vda"});
  EXPECT_THAT(req.dest_xml, HasSubstr("/other/g1-vda.qcow2"));
  EXPECT_THAT(req.persist_xml, HasSubstr("/other/g1-vda.qcow2"));
  EXPECT_FALSE(req.shared_storage_vouched);
  EXPECT_THAT(r.message, HasSubstr("source files deleted on host 'host1'"));
}

// Test that with the same path no definition is rewritten, and that
// --keep-source keeps the source file.
TEST_F(LiveMigrationTest, SamePathAndKeepSource) {
  copy_vda("/local/g1-vda.qcow2");
  options_.keep_source = true;
  Result r = run();
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_TRUE(src_.requests.at(0).dest_xml.empty());
  EXPECT_THAT(events_, Not(Contains(HasSubstr("remove"))));
  EXPECT_THAT(r.message, HasSubstr("--keep-source"));
  EXPECT_EQ(job_.last(4), StepState::kSkipped);
}

// Test that --shallow creates the destination's top layer on the same
// backing file and asks libvirt to copy only the top layers.
TEST_F(LiveMigrationTest, ShallowCopiesTheTopLayer) {
  copy_vda("/local/g1-vda.qcow2");
  plan_.copies[0].backing = {"/shared/base.qcow2"};
  plan_.copies[0].backing_format = "qcow2";
  options_.shallow = true;
  Result r = run();
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_EQ(events_.at(0), "host2 create /local/g1-vda.qcow2 qcow2 67108864 on /shared/base.qcow2");
  EXPECT_TRUE(src_.requests.at(0).copy_top_only);
  EXPECT_THAT(r.message, HasSubstr("backing files left in place"));
}

// Test that a failed migration leaves the VM on the source and removes the
// image it created and a leftover definition on the destination.
TEST_F(LiveMigrationTest, FailureLeavesTheSource) {
  copy_vda("/local/g1-vda.qcow2");
  src_.script.result = "internal error: qemu unexpectedly closed the monitor";
  dst_.vms["g1"] = FakeVm{.state = "shut off"};  // a leftover of the failed incoming side
  Result r = run();
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("The migration failed: internal error: qemu unexpectedly"));
  EXPECT_THAT(r.message, HasSubstr("The VM stays on host 'host1' (running), unchanged; the "
                                   "destination images on host 'host2' were removed"));
  EXPECT_THAT(events_, ElementsAre("host2 create /local/g1-vda.qcow2 qcow2 67108864", "host1 start",
                                   "host2 undefine g1", "host2 remove /local/g1-vda.qcow2"));
  EXPECT_EQ(job_.last(2), StepState::kFailed);
  EXPECT_THAT(job_.saved.back(), HasSubstr("\"phase\":\"undone\""));
}

// Test that a destination image that cannot be created fails the prepare
// step, and one that could not start fails the migrate step; both undo.
TEST_F(LiveMigrationTest, PrepareAndStartFailures) {
  copy_vda("/local/g1-vda.qcow2");
  dst_.fail.insert("create");
  Result r = run();
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("Preparing host 'host2' failed: injected failure of create"));
  EXPECT_EQ(job_.last(1), StepState::kFailed);
  EXPECT_THAT(events_, Not(Contains("host1 start")));

  events_.clear();
  dst_.fail.erase("create");
  src_.start_error = "Requested operation is not valid: domain is not running";
  FakeJob second;
  r = run_live_migration(src_, dst_, plan_, options_, second);
  EXPECT_THAT(r.message, HasSubstr("The migration could not start: Requested operation"));
  EXPECT_THAT(events_, Contains("host2 remove /local/g1-vda.qcow2"));
}

// Test that a cancel aborts the migration: cancelled, VM on the source.
TEST_F(LiveMigrationTest, CancelAborts) {
  plan_.shared = {{"vda", "/shared/g1-vda.qcow2"}};
  src_.script.polls_before_end = 1000;
  job_.cancel_on_progress = true;
  Result r = run();
  EXPECT_EQ(r.outcome, Outcome::kCancelled);
  EXPECT_THAT(r.message, HasSubstr("Cancelled by request during the migration. The VM stays "
                                   "on host 'host1' (running), unchanged."));
  EXPECT_THAT(events_, ElementsAre("host1 start", "abort"));
  EXPECT_EQ(job_.last(2), StepState::kUndone);
}

// Test that a migration that makes no progress is aborted after
// --progress-timeout, or has its source paused with --timeout-action suspend.
TEST_F(LiveMigrationTest, ProgressTimeout) {
  plan_.shared = {{"vda", "/shared/g1-vda.qcow2"}};
  src_.vms["g1"].disks = {{"vda", "/shared/g1-vda.qcow2"}};
  src_.script.stalls = true;
  options_.progress_timeout = 0s;
  Result r = run();
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("Aborted: no progress for 0 s (--progress-timeout"));
  EXPECT_THAT(events_, Contains("abort"));

  events_.clear();
  options_.timeout_action = "suspend";
  src_.vms["g1"] = FakeVm{.disks = {{"vda", "/shared/g1-vda.qcow2"}}};
  FakeJob second;
  r = run_live_migration(src_, dst_, plan_, options_, second);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(events_, ElementsAre("host1 start", "suspend"));
  EXPECT_THAT(r.message, HasSubstr("the guest was paused so that the migration completes"));
  EXPECT_THAT(second.notes, Contains(HasSubstr("no progress for 0 s")));
}

// Test that a migration libvirt calls successful, after which the VM does
// not run on the destination or uses another file, is reported and the
// source files are kept.
TEST_F(LiveMigrationTest, VerifyCatchesAWrongOutcome) {
  copy_vda("/other/g1-vda.qcow2");
  src_.script.dest_disks = {{"vda", "/local/g1-vda.qcow2"}};
  Result r = run();
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("disk vda uses '/local/g1-vda.qcow2' instead of "
                                   "'/other/g1-vda.qcow2'"));
  EXPECT_THAT(events_, Not(Contains(HasSubstr("host1 remove"))));

  events_.clear();
  src_.vms["g1"] = FakeVm{.disks = {{"vda", "/local/g1-vda.qcow2"}}};
  dst_.vms.clear();
  src_.script.dest_disks.clear();
  dst_.storage().remove("/other/g1-vda.qcow2");  // the first run kept its copy
  src_.script.moves_vm = false;                  // "success", but nothing runs on the destination
  FakeJob second;
  r = run_live_migration(src_, dst_, plan_, options_, second);
  EXPECT_THAT(r.message, HasSubstr("the VM is not defined on host 'host2'"));
  EXPECT_EQ(second.last(3), StepState::kFailed);
}

// Test recovery: a migration still running is cancelled and waited for;
// then the VM's place decides: destination -> completed (source files
// deleted), source -> rolled back (destination images removed).
TEST_F(LiveMigrationTest, Recovery) {
  // The image the job made on host2, recorded with its identity.
  dst_.put_file("/local/g1-vda.qcow2", 4096);
  std::string made = codec::dump(
      std::vector<Created>{record_created(dst_.storage(), "host2", "/local/g1-vda.qcow2")});
  std::string saved =
      R"({"phase":"migrate","vm":"g1","keep_source":false,"created":)" + made +
      R"(,"copies":[{"target":"vda","source":"/local/g1-vda.qcow2","dest":"/local/g1-vda.qcow2"}]})";
  src_.job_active = true;
  Result r = recover_live_migration(src_, dst_, saved, job_);
  EXPECT_EQ(r.outcome, Outcome::kRolledBack);
  EXPECT_THAT(r.message, HasSubstr("died before the switch-over. The VM runs on host 'host1'"));
  EXPECT_THAT(events_, ElementsAre("host1 abort_job", "host2 remove /local/g1-vda.qcow2"));

  events_.clear();
  src_.vms.clear();
  dst_.vms["g1"] = FakeVm{};
  FakeJob second;
  r = recover_live_migration(src_, dst_, saved, second);
  EXPECT_EQ(r.outcome, Outcome::kCompleted);
  EXPECT_THAT(r.message, HasSubstr("the VM runs on host 'host2'"));
  EXPECT_THAT(events_, ElementsAre("host1 remove /local/g1-vda.qcow2"));

  events_.clear();
  dst_.vms.clear();
  FakeJob third;
  r = recover_live_migration(src_, dst_, saved, third);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("not defined on host 'host1' and not defined on host 'host2'"));
  EXPECT_THAT(events_, IsEmpty());
}

// Test that a destination file that appears after the plan (another job,
// the user) makes the create fail and is not deleted by the undo: the job
// records a file as its own only after it created it.
TEST_F(LiveMigrationTest, AFileThatAppearedBeforeTheCreateIsNotDeleted) {
  copy_vda("/local/g1-vda.qcow2");
  dst_.before_create = [&](const std::string& path) { dst_.put_file(path, 4096, 'u'); };
  Result r = run();
  EXPECT_EQ(r.outcome, Outcome::kFailed) << r.message;
  EXPECT_TRUE(dst_.storage().exists("/local/g1-vda.qcow2"));
  EXPECT_THAT(events_, Not(Contains("host2 remove /local/g1-vda.qcow2")));
  EXPECT_THAT(r.message, Not(HasSubstr("were removed")));
}

// Test that a destination image this job created but that was replaced
// afterwards (another inode at the same path) is left in place by the undo,
// and the job says so.
TEST_F(LiveMigrationTest, AReplacedDestinationIsLeftInPlace) {
  copy_vda("/local/g1-vda.qcow2");
  // Replaced once the images are made, before the migration starts.
  class ReplacingJob : public FakeJob {
   public:
    explicit ReplacingJob(FakeHost& host) : host_(host) {}
    void checkpoint(std::string_view point) override {
      FakeJob::checkpoint(point);
      if (point == "prepared") host_.replace_file("/local/g1-vda.qcow2", 4096);
    }

   private:
    FakeHost& host_;
  } job(dst_);
  src_.script.result = "migration failed: injected";
  Result r = run_live_migration(src_, dst_, plan_, options_, job);
  EXPECT_EQ(r.outcome, Outcome::kFailed) << r.message;
  EXPECT_TRUE(dst_.storage().exists("/local/g1-vda.qcow2"));
  EXPECT_THAT(r.message, HasSubstr("left '/local/g1-vda.qcow2' in place on host 'host2': it is "
                                   "not the file this job created"));
}

// Test that --force replaces only the file the plan found and checked: a
// destination that appeared after the plan is refused, not removed.
TEST_F(LiveMigrationTest, ForceReplacesOnlyWhatThePlanChecked) {
  copy_vda("/local/g1-vda.qcow2");
  dst_.put_file("/local/g1-vda.qcow2", 4096, 'u');
  options_.force = true;  // but the plan did not see the file: replace_existing is false
  Result r = run();
  EXPECT_EQ(r.outcome, Outcome::kFailed) << r.message;
  EXPECT_TRUE(dst_.storage().exists("/local/g1-vda.qcow2"));
  EXPECT_THAT(events_, Not(Contains("host2 remove /local/g1-vda.qcow2")));
}

// Test that recovery does not take a VM paused on the destination for a
// finished migration when the destination has no completed statistics: no
// source file is deleted, and the message says where the VM is.
TEST_F(LiveMigrationTest, RecoveryDoesNotTakeAPausedDestinationForDone) {
  std::string saved =
      R"({"phase":"migrate","vm":"g1","keep_source":false,"created":[],)"
      R"("copies":[{"target":"vda","source":"/local/g1-vda.qcow2","dest":"/local/g1-vda.qcow2"}]})";
  src_.vms.clear();
  dst_.vms["g1"] = FakeVm{.state = "paused"};
  dst_.completed.reset();
  Result r = recover_live_migration(src_, dst_, saved, job_);
  EXPECT_NE(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_TRUE(src_.storage().exists("/local/g1-vda.qcow2"));
  EXPECT_THAT(events_, Not(Contains("host1 remove /local/g1-vda.qcow2")));
  EXPECT_THAT(r.message, HasSubstr("paused on host 'host2'"));

  // With the migration known complete, a paused destination is done.
  events_.clear();
  dst_.completed = hosts::CompletedMigration{.downtime_ms = 100};
  FakeJob second;
  r = recover_live_migration(src_, dst_, saved, second);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(events_, ElementsAre("host1 remove /local/g1-vda.qcow2"));
}

// Test that the request follows the options: zstd brings multifd, a
// post-copy timeout action allows post-copy.
TEST(MigrationRequestFromOptions, CompressionAndPostcopy) {
  LiveMigrationPlan plan;
  LiveMigrationOptions o;
  o.compress = "zstd";
  EXPECT_EQ(migration_request(plan, o, "", "").parallel, 2);
  o.parallel = 4;
  EXPECT_EQ(migration_request(plan, o, "", "").parallel, 4);
  o.timeout_action = "postcopy";
  EXPECT_TRUE(migration_request(plan, o, "", "").postcopy);
  o.max_downtime = 120ms;
  EXPECT_EQ(migration_request(plan, o, "", "").max_downtime, 120ms);
}

// Test that options and plans survive the job record.
TEST(LiveMigrationJson, RoundTrip) {
  LiveMigrationOptions o;
  o.dest_host = "host2";
  o.type = Kind::kLiveVsm;
  o.storage = "shared";
  o.disks = {{"vda", "/x/vda.qcow2"}};
  o.bandwidth = 5 << 20;
  o.compress = "xbzrle";
  o.auto_converge = true;
  o.max_downtime = 200ms;
  o.timeout_per_gib = 30s;
  o.keep_source = true;
  LiveMigrationOptions back = codec::decode<LiveMigrationOptions>(codec::encode(o), "options");
  EXPECT_EQ(codec::dump(back), codec::dump(o));
  EXPECT_EQ(back.disks, o.disks);
  LiveMigrationPlan p;
  p.vm = "g1";
  p.shared = {{"vdb", "/shared/vdb.qcow2"}};
  DiskMove m;
  m.target = "vda";
  m.dest = "/x";
  p.copies = {m};
  p.prediction.total = 2500ms;
  EXPECT_EQ(codec::dump(codec::decode<LiveMigrationPlan>(codec::encode(p), "plan")),
            codec::dump(p));
}

}  // namespace
}  // namespace vmshift::migrate
