// move-storage's checks rule by rule, on hand-written facts (no guest, no
// storage), and what gather_facts asks of a guest and its storage.
// tests/unit/live_storage_test.cc plans whole moves over real files.
#include "migrate/live_storage_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "support/fake_storage.h"

namespace vmshift::migrate::live_storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::uint64_t kGiB = 1ull << 30;

// The code and message of what f throws; fails the test if it throws nothing.
std::pair<ErrorCode, std::string> refusal(const std::function<void()>& f) {
  try {
    f();
    ADD_FAILURE() << "nothing was refused";
    return {ErrorCode::kInternal, ""};
  } catch (const Error& e) {
    return {e.code(), e.what()};
  }
}

Error io(const std::string& what) { return Error(ErrorCode::kIo, what); }

class LiveStorageChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    f_.vm = "VM 'web'";
    f_.state = "running";
    f_.disks = {{.target = "vda", .path = "/src/a.qcow2", .format = "qcow2", .allocation = 4096},
                {.target = "vdb", .path = "/src/b.qcow2", .format = "qcow2", .allocation = 8192}};
    o_.to_dir = "/dst";
    f_.free["/dst"] = {10 * kGiB, std::nullopt};
    f_.exists["/dst/a.qcow2"] = {false, std::nullopt};
    f_.exists["/dst/b.qcow2"] = {false, std::nullopt};
  }
  Choice vda(const std::string& dest = "/dst/a.qcow2") const { return {f_.disks[0], dest}; }
  // The destination of vda exists: not the same file as any the VM uses.
  void vda_exists() {
    f_.exists["/dst/a.qcow2"] = {true, std::nullopt};
    for (const auto& file : files_used(f_)) f_.same[{"/dst/a.qcow2", file}] = {false, std::nullopt};
    f_.ids["/dst/a.qcow2"] = {hosts::FileIdentity{.basis = "inode", .device = 1, .inode = 7},
                              std::nullopt};
  }

  Facts f_;
  LiveStorageOptions o_;
};

// ---- state

// Test that a running or paused VM passes and any other state is refused,
// naming the VM and its state.
TEST_F(LiveStorageChecks, StateRunningOrPaused) {
  EXPECT_NO_THROW(check_state(f_));
  f_.state = "paused";
  EXPECT_NO_THROW(check_state(f_));
  f_.state = "shut off";
  auto [code, msg] = refusal([&] { check_state(f_); });
  EXPECT_EQ(code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(msg, "VM 'web' is shut off: a live storage migration needs a running (or paused) VM");
}

// ---- where

// Test that --to or --disk passes and neither is refused, saying what to write.
TEST_F(LiveStorageChecks, WhereNeedsToOrDisk) {
  EXPECT_NO_THROW(check_where(o_));
  LiveStorageOptions disks;
  disks.disks = {{"vda", "/x"}};
  EXPECT_NO_THROW(check_where(disks));
  auto [code, msg] = refusal([&] { check_where({}); });
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("--to DIR or --disk TARGET=PATH"));
}

// ---- which disks

// Test that --to takes every disk with a file, under its own name, trailing
// slashes dropped; an empty drive stays.
TEST_F(LiveStorageChecks, ChooseToDirTakesEveryDiskWithAFile) {
  f_.disks.push_back({.target = "hdc", .path = "", .format = "raw"});
  o_.to_dir = "/dst//";
  std::vector<Choice> c = choose_disks(f_, o_);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].disk.target, "vda");
  EXPECT_EQ(c[0].dest, "/dst/a.qcow2");
  EXPECT_EQ(c[1].disk.target, "vdb");
  EXPECT_EQ(c[1].dest, "/dst/b.qcow2");
}

// Test that --disk takes only the disks it names: to its path, or into --to.
TEST_F(LiveStorageChecks, ChooseNamedDisks) {
  o_.disks = {{"vdb", ""}, {"vda", "/fast/x.qcow2"}};
  std::vector<Choice> c = choose_disks(f_, o_);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].disk.target, "vdb");
  EXPECT_EQ(c[0].dest, "/dst/b.qcow2");
  EXPECT_EQ(c[1].disk.target, "vda");
  EXPECT_EQ(c[1].dest, "/fast/x.qcow2");
}

// Test each refusal of the disks named: twice, unknown (listing the disks),
// an empty drive, no destination; and a VM with no disk to move.
TEST_F(LiveStorageChecks, ChooseRefusals) {
  o_.disks = {{"vda", "/a"}, {"vda", "/b"}};
  EXPECT_EQ(refusal([&] { choose_disks(f_, o_); }),
            std::make_pair(ErrorCode::kInvalidArgument,
                           std::string("disk vda is named twice with --disk")));
  o_.disks = {{"sdz", "/z"}};
  EXPECT_EQ(refusal([&] { choose_disks(f_, o_); }),
            std::make_pair(ErrorCode::kNotFound,
                           std::string("VM 'web' has no disk 'sdz' (disks: vda, vdb)")));
  f_.disks.push_back({.target = "hdc", .path = "", .format = "raw"});
  o_.disks = {{"hdc", "/c"}};
  EXPECT_EQ(refusal([&] { choose_disks(f_, o_); }),
            std::make_pair(ErrorCode::kInvalidArgument,
                           std::string("disk hdc has no file to move (an empty drive)")));
  o_.to_dir.reset();
  o_.disks = {{"vda", ""}};
  EXPECT_THAT(refusal([&] { choose_disks(f_, o_); }).second,
              HasSubstr("disk vda has no destination: write --disk vda=PATH or add --to DIR"));
  f_.disks = {{.target = "hdc", .path = "", .format = "raw"}};
  o_ = {};
  o_.to_dir = "/dst";
  EXPECT_EQ(refusal([&] { choose_disks(f_, o_); }),
            std::make_pair(ErrorCode::kNotFound, std::string("VM 'web' has no disk to move")));
}

// ---- path

// Test that a destination must be absolute, no other disk's, and no file
// the VM uses (its backing files included).
TEST_F(LiveStorageChecks, PathRules) {
  f_.disks[1].backing = {"/src/base.qcow2"};
  std::vector<std::string> used = files_used(f_);
  EXPECT_THAT(used, ElementsAre("/src/a.qcow2", "/src/b.qcow2", "/src/base.qcow2"));
  std::map<std::string, std::string> dests;
  EXPECT_NO_THROW(check_path(vda(), used, dests));
  EXPECT_EQ(dests.at("/dst/a.qcow2"), "vda");

  auto [code, msg] = refusal([&] { check_path({f_.disks[1], "/dst/a.qcow2"}, used, dests); });
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(msg, "two disks would go to the same file '/dst/a.qcow2' (disks vda and vdb)");

  std::map<std::string, std::string> none;
  EXPECT_THAT(refusal([&] { check_path(vda("rel/a.qcow2"), used, none); }).second,
              HasSubstr("destination 'rel/a.qcow2' of disk vda must be an absolute path"));
  EXPECT_THAT(refusal([&] { check_path(vda(""), used, none); }).second,
              HasSubstr("must be an absolute path"));
  EXPECT_THAT(refusal([&] { check_path(vda("/src/base.qcow2"), used, none); }).second,
              HasSubstr("destination '/src/base.qcow2' of disk vda is a file the VM already uses"));
}

// ---- dir

// Test that the destination directory passes when its probe answered, and
// is refused with the probe's code and message otherwise (or "cannot
// check" when it was not probed).
TEST_F(LiveStorageChecks, DirMustBeThere) {
  EXPECT_NO_THROW(check_dir(f_, vda()));
  f_.free["/dst"] = {std::nullopt, Error(ErrorCode::kNotFound, "no directory '/dst'")};
  EXPECT_EQ(refusal([&] { check_dir(f_, vda()); }),
            std::make_pair(ErrorCode::kNotFound,
                           std::string("destination of disk vda: no directory '/dst'")));
  EXPECT_THAT(refusal([&] { check_dir(f_, vda("/other/a.qcow2")); }).second,
              HasSubstr("destination of disk vda: cannot check: the free space of '/other' was "
                        "not looked at"));
}

// ---- existing

// Test that a destination that is not there needs nothing replaced.
TEST_F(LiveStorageChecks, ExistingNothingThere) {
  DiskMove m = move_of(f_.disks[0], "/dst/a.qcow2");
  EXPECT_EQ(check_existing(f_, o_, vda(), files_used(f_), m), std::nullopt);
  EXPECT_FALSE(m.replace_existing);
}

// Test that an existing destination is refused without --force, and never
// replaced when it is a file the VM uses through another name, even with it.
TEST_F(LiveStorageChecks, ExistingRefusedWithoutForceOrWhenTheVmsOwn) {
  vda_exists();
  DiskMove m = move_of(f_.disks[0], "/dst/a.qcow2");
  std::vector<std::string> used = files_used(f_);
  EXPECT_EQ(refusal([&] { check_existing(f_, o_, vda(), used, m); }),
            std::make_pair(ErrorCode::kAlreadyExists,
                           std::string("destination '/dst/a.qcow2' of disk vda already exists "
                                       "(--force replaces it)")));
  o_.force = true;
  f_.same[{"/dst/a.qcow2", "/src/b.qcow2"}] = {true, std::nullopt};
  auto [code, msg] = refusal([&] { check_existing(f_, o_, vda(), used, m); });
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("destination '/dst/a.qcow2' of disk vda is the file '/src/b.qcow2' "
                             "the VM already uses (through a link"));
  EXPECT_FALSE(m.replace_existing);
}

// Test that --force replaces a file no defined VM uses, recording its
// identity and saying so.
TEST_F(LiveStorageChecks, ExistingReplacedWithForce) {
  vda_exists();
  o_.force = true;
  f_.in_use = {{"/elsewhere/other.qcow2", "VM 'b' on host 'host1'"}};
  DiskMove m = move_of(f_.disks[0], "/dst/a.qcow2");
  EXPECT_EQ(check_existing(f_, o_, vda(), files_used(f_), m),
            "--force replaces '/dst/a.qcow2' (disk vda): no defined VM uses it");
  EXPECT_TRUE(m.replace_existing);
  ASSERT_TRUE(m.replaces);
  EXPECT_EQ(m.replaces->inode, 7u);
}

// Test that --force never replaces a file another defined VM uses, by its
// path or through another name of the same file name; and that a link
// that cannot be checked is refused too.
TEST_F(LiveStorageChecks, ExistingInUseIsNeverReplaced) {
  vda_exists();
  o_.force = true;
  DiskMove m = move_of(f_.disks[0], "/dst/a.qcow2");
  std::vector<std::string> used = files_used(f_);
  f_.in_use = {{"/dst/a.qcow2", "VM 'b' on host 'host1'"}};
  auto [code, msg] = refusal([&] { check_existing(f_, o_, vda(), used, m); });
  EXPECT_EQ(code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(msg,
            "destination '/dst/a.qcow2' of disk vda is a file VM 'b' on host 'host1' uses it as "
            "'/dst/a.qcow2'; --force never replaces a file a defined VM uses");

  f_.in_use = {{"/link/a.qcow2", "VM 'c' on host 'host2'"}};
  f_.same[{"/dst/a.qcow2", "/link/a.qcow2"}] = {true, std::nullopt};
  EXPECT_THAT(refusal([&] { check_existing(f_, o_, vda(), used, m); }).second,
              HasSubstr("VM 'c' on host 'host2' uses it as '/link/a.qcow2'"));

  f_.same[{"/dst/a.qcow2", "/link/a.qcow2"}] = {false, io("connection reset")};
  auto [code3, msg3] = refusal([&] { check_existing(f_, o_, vda(), used, m); });
  EXPECT_EQ(code3, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(msg3, HasSubstr("exists, and whether it is the file '/link/a.qcow2' of VM 'c' on "
                              "host 'host2' cannot be checked: connection reset"));
  EXPECT_FALSE(m.replace_existing);
}

// Test that a probe that failed is the check's error: whether the file is
// there, whether it is the VM's own, its identity.
TEST_F(LiveStorageChecks, ExistingProbeErrorsAreRefusals) {
  DiskMove m = move_of(f_.disks[0], "/dst/a.qcow2");
  std::vector<std::string> used = files_used(f_);
  f_.exists["/dst/a.qcow2"] = {false, io("cannot look up '/dst/a.qcow2'")};
  EXPECT_EQ(refusal([&] { check_existing(f_, o_, vda(), used, m); }),
            std::make_pair(ErrorCode::kIo, std::string("cannot look up '/dst/a.qcow2'")));
  vda_exists();
  f_.same[{"/dst/a.qcow2", "/src/a.qcow2"}] = {false, io("stat failed")};
  EXPECT_EQ(refusal([&] { check_existing(f_, o_, vda(), used, m); }).second, "stat failed");
  vda_exists();
  o_.force = true;
  f_.ids["/dst/a.qcow2"] = {std::nullopt, io("identity failed")};
  EXPECT_EQ(refusal([&] { check_existing(f_, o_, vda(), used, m); }).second, "identity failed");
}

// ---- need and space

// Test that a disk needs its allocation and its backing chain's, only its
// own with --shallow; a failed allocation probe is the error.
TEST_F(LiveStorageChecks, NeedCountsTheChainUnlessShallow) {
  f_.disks[0].backing = {"/src/base.qcow2"};
  f_.allocation["/src/base.qcow2"] = {1000, std::nullopt};
  EXPECT_EQ(need(f_, o_, vda()), 4096u + 1000u);
  o_.shallow = true;
  EXPECT_EQ(need(f_, o_, vda()), 4096u);
  o_.shallow = false;
  f_.allocation["/src/base.qcow2"] = {std::nullopt, std::nullopt};  // unknown: counts 0
  EXPECT_EQ(need(f_, o_, vda()), 4096u);
  f_.allocation["/src/base.qcow2"] = {std::nullopt, io("no answer")};
  EXPECT_EQ(refusal([&] { need(f_, o_, vda()); }).second, "no answer");
}

// Test that each directory must have room for its disks and a margin (5%
// and 16 MiB), and that an unknown free space passes.
TEST_F(LiveStorageChecks, SpaceForEveryDirectory) {
  DiskMove a = move_of(f_.disks[0], "/dst/a.qcow2");
  DiskMove b = move_of(f_.disks[1], "/dst/b.qcow2");
  a.need = b.need = 100ull << 20;
  EXPECT_NO_THROW(check_space(f_, {a, b}));
  f_.free["/dst"] = {(200ull << 20) + (10ull << 20) + (16ull << 20) - 1, std::nullopt};
  auto [code, msg] = refusal([&] { check_space(f_, {a, b}); });
  EXPECT_EQ(code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(msg, HasSubstr("not enough space in '/dst' for disks vda, vdb: 226.0 MiB needed"));
  EXPECT_NO_THROW(check_space(f_, {a}));
  f_.free["/dst"] = {std::nullopt, std::nullopt};
  EXPECT_NO_THROW(check_space(f_, {a, b}));
}

// ---- the plan

// Test that plan() makes the moves and notes from the facts, and refuses at
// the first check that fails, in order: the state before the request.
TEST_F(LiveStorageChecks, PlanFromFactsAlone) {
  LiveStoragePlan p = plan(f_, o_);
  ASSERT_EQ(p.moves.size(), 2u);
  EXPECT_EQ(p.moves[0].dest, "/dst/a.qcow2");
  EXPECT_EQ(p.moves[0].need, 4096u);
  EXPECT_EQ(p.moves[1].need, 8192u);
  EXPECT_THAT(p.notes, ElementsAre(HasSubstr("only disks move")));

  f_.state = "shut off";
  EXPECT_THAT(refusal([&] { plan(f_, {}); }).second, HasSubstr("is shut off"));
  f_.state = "running";
  EXPECT_THAT(refusal([&] { plan(f_, {}); }).second, HasSubstr("--to DIR or --disk"));
}

// ---- gathering

// A guest that answers the planning questions, over storage in memory; a
// copy is never asked for.
class PlanGuest : public guest::Guest {
 public:
  std::string describe() const override { return "VM 'web'"; }
  std::string state() override { return state_; }
  std::vector<guest::DiskInfo> disks() override {
    ++disk_reads;
    return disks_;
  }
  hosts::Storage& storage() override { return storage_; }
  void start_copy(const guest::CopyRequest&) override { ADD_FAILURE() << "start_copy"; }
  guest::CopyStatus copy_status(const std::string&) override { return {}; }
  void set_copy_bandwidth(const std::string&, std::uint64_t) override {}
  std::chrono::milliseconds pivot(const std::string&, Deadline) override { return {}; }
  void abort_copy(const std::string&, Deadline) override {}
  std::string active_path(const std::string&) override { return ""; }
  std::string persist_paths(const std::map<std::string, std::string>&) override { return ""; }

  std::string state_ = "running";
  std::vector<guest::DiskInfo> disks_ = {
      {.target = "vda", .path = "/src/a.qcow2", .format = "qcow2", .allocation = 4096}};
  testing::MemoryStorage storage_;
  int disk_reads = 0;
};

// Test that gathering asks a VM that is not running nothing more, and
// probes nothing for a request the checks refuse before any probe.
TEST(LiveStorageFacts, NothingProbedBeforeTheRequestPasses) {
  PlanGuest g;
  g.state_ = "shut off";
  LiveStorageOptions o;
  o.to_dir = "/dst";
  Facts f = gather_facts(g, o, {});
  EXPECT_EQ(f.vm, "VM 'web'");
  EXPECT_EQ(f.state, "shut off");
  EXPECT_EQ(g.disk_reads, 0);
  g.state_ = "running";
  EXPECT_TRUE(gather_facts(g, {}, {}).free.empty());
  o.disks = {{"sdz", "/z"}};
  f = gather_facts(g, o, {});
  EXPECT_EQ(f.disks.size(), 1u);
  EXPECT_TRUE(f.free.empty());
  EXPECT_TRUE(f.exists.empty());
}

// Test that gathering keeps a failed probe's error for the check (the
// directory of a destination not there), and probes an existing
// destination's identity and other VMs' files of its name only with --force.
TEST(LiveStorageFacts, ProbesWhatTheChecksRead) {
  PlanGuest g;
  g.storage_.dirs = {{"/dst", 10 * kGiB}};
  LiveStorageOptions o;
  o.disks = {{"vda", "/nowhere/a.qcow2"}};
  Facts f = gather_facts(g, o, {});
  ASSERT_TRUE(f.free.at("/nowhere").error);
  EXPECT_EQ(f.free.at("/nowhere").error->code(), ErrorCode::kNotFound);
  EXPECT_THAT(refusal([&] { plan(f, o); }).second,
              HasSubstr("destination of disk vda: cannot reach directory '/nowhere'"));

  g.storage_.files = {"/dst/a.qcow2"};
  o.disks = {{"vda", "/dst/a.qcow2"}};
  std::map<std::string, std::string> in_use = {{"/other/a.qcow2", "VM 'b' on host 'host1'"}};
  f = gather_facts(g, o, in_use);
  EXPECT_TRUE(f.exists.at("/dst/a.qcow2").value);
  EXPECT_TRUE(f.ids.empty());
  EXPECT_EQ(f.same.count({"/dst/a.qcow2", "/other/a.qcow2"}), 0u);
  EXPECT_EQ(refusal([&] { plan(f, o); }).first, ErrorCode::kAlreadyExists);

  o.force = true;
  f = gather_facts(g, o, in_use);
  EXPECT_EQ(f.same.count({"/dst/a.qcow2", "/other/a.qcow2"}), 1u);
  ASSERT_EQ(f.ids.count("/dst/a.qcow2"), 1u);
  LiveStoragePlan p = plan(f, o);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_TRUE(p.moves[0].replace_existing);
  EXPECT_EQ(p.moves[0].replaces->key, "/dst/a.qcow2");
}

}  // namespace
}  // namespace vmshift::migrate::live_storage
