// Live storage migration's rules, on a fake guest whose files are real files
// in a temporary directory: the checks of the plan, and the order of steps,
// undo and cleanup of a run.
#include "migrate/live_storage.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "base/error.h"
#include "guest/local_storage.h"
#include "support/temp_dir.h"

namespace vmshift::migrate {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

// LocalStorage with an optional fixed free space, recording removals.
class FakeStorage : public guest::LocalStorage {
 public:
  std::optional<std::uint64_t> free_bytes(const std::string& dir) override {
    std::optional<std::uint64_t> real = LocalStorage::free_bytes(dir);  // throws if missing
    return free ? free : real;
  }
  void remove(const std::string& path) override {
    removed.push_back(path);
    LocalStorage::remove(path);
  }
  std::optional<std::uint64_t> free;
  std::vector<std::string> removed;
};

// A guest whose copies become ready after `polls_until_ready` status reads.
class FakeGuest : public guest::Guest {
 public:
  std::string describe() const override { return "VM 'fake'"; }
  std::string state() override { return state_; }
  std::vector<guest::DiskInfo> disks() override { return disks_; }
  guest::Storage& storage() override { return storage_; }
  void start_copy(const guest::CopyRequest& r) override {
    requests.push_back(r);
    std::ofstream(r.dest) << "copy";
    copies[r.target] = 0;
  }
  guest::CopyStatus copy_status(const std::string& target) override {
    int& polls = copies.at(target);
    ++polls;
    return {.active = true,
            .ready = polls > polls_until_ready,
            .done = static_cast<std::uint64_t>(std::min(polls, polls_until_ready + 1)),
            .total = static_cast<std::uint64_t>(polls_until_ready + 1)};
  }
  void set_copy_bandwidth(const std::string& target, std::uint64_t bps) override {
    bandwidth_changes.emplace_back(target, bps);
  }
  std::chrono::milliseconds pivot(const std::string& target, Deadline) override {
    for (auto& d : disks_)
      if (d.target == target)
        for (const auto& r : requests)
          if (r.target == target) d.path = r.dest;
    pivoted.push_back(target);
    return std::chrono::milliseconds(7);
  }
  void abort_copy(const std::string& target, Deadline) override { aborted.push_back(target); }
  std::string active_path(const std::string& target) override {
    for (const auto& d : disks_)
      if (d.target == target) return d.path;
    return "";
  }
  std::string persist_paths(const std::map<std::string, std::string>& paths) override {
    persisted = paths;
    return "definition updated";
  }

  std::string state_ = "running";
  std::vector<guest::DiskInfo> disks_;
  FakeStorage storage_;
  int polls_until_ready = 1;
  std::map<std::string, int> copies;
  std::vector<guest::CopyRequest> requests;
  std::vector<std::pair<std::string, std::uint64_t>> bandwidth_changes;
  std::vector<std::string> pivoted, aborted;
  std::map<std::string, std::string> persisted;
};

class FakeContext : public JobContext {
 public:
  void step(std::size_t index, StepState state, const std::string& detail) override {
    steps[index] = state;
    details[index] = detail;
  }
  void progress(std::string_view, std::uint64_t, std::uint64_t) override {
    if (cancel_after_progress && ++progress_calls >= cancel_after_progress) cancel = true;
  }
  void pause(std::chrono::milliseconds ms) override { paused = ms; }
  void save_state(const std::string& json) override { saved.push_back(json); }
  bool cancel_requested() override { return cancel; }
  void note(const std::string&) override {}
  void checkpoint(std::string_view point) override {
    points.emplace_back(point);
    if (point == cancel_at) cancel = true;
  }

  std::map<std::size_t, StepState> steps;
  std::map<std::size_t, std::string> details;
  std::optional<std::chrono::milliseconds> paused;
  std::vector<std::string> saved;
  std::vector<std::string> points;
  bool cancel = false;
  int cancel_after_progress = 0;
  int progress_calls = 0;
  std::string cancel_at;
};

class LiveStorage : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.file("src"));
    std::filesystem::create_directories(dir_.file("dst"));
    add_disk("vda", "a.qcow2", 4096);
    add_disk("vdb", "b.qcow2", 8192);
  }
  void add_disk(const std::string& target, const std::string& file, std::uint64_t bytes) {
    std::string path = dir_.file("src/" + file);
    std::ofstream(path) << std::string(bytes, 'x');
    guest_.disks_.push_back({.target = target,
                             .path = path,
                             .format = "qcow2",
                             .capacity = 1 << 30,
                             .allocation = bytes});
  }
  std::string src(const std::string& f) const { return dir_.file("src/" + f); }
  std::string dst(const std::string& f) const { return dir_.file("dst/" + f); }

  // The refusal's message, or "" if the plan was accepted.
  std::string refusal(const LiveStorageOptions& o) {
    try {
      plan_live_storage(guest_, o);
      return "";
    } catch (const Error& e) {
      return e.what();
    }
  }

  TempDir dir_{"vmslst"};
  FakeGuest guest_;
};

LiveStorageOptions to(const std::string& dir) {
  LiveStorageOptions o;
  o.to_dir = dir;
  return o;
}

// Test that --to DIR moves every disk into DIR under its own file name,
// needing its allocated bytes, and that --disk picks disks and paths.
TEST_F(LiveStorage, PlansWhichDisksGoWhere) {
  LiveStoragePlan all = plan_live_storage(guest_, to(dir_.file("dst/")));
  ASSERT_EQ(all.moves.size(), 2u);
  EXPECT_EQ(all.moves[0].target, "vda");
  EXPECT_EQ(all.moves[0].dest, dst("a.qcow2"));
  EXPECT_EQ(all.moves[0].need, 4096u);
  EXPECT_EQ(all.moves[1].dest, dst("b.qcow2"));

  LiveStorageOptions one;
  one.disks = {{"vdb", dst("renamed.qcow2")}};
  LiveStoragePlan p = plan_live_storage(guest_, one);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].target, "vdb");
  EXPECT_EQ(p.moves[0].source, src("b.qcow2"));
  EXPECT_EQ(p.moves[0].dest, dst("renamed.qcow2"));

  LiveStorageOptions picked = to(dir_.file("dst"));
  picked.disks = {{"vda", ""}};
  p = plan_live_storage(guest_, picked);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].dest, dst("a.qcow2"));
}

// Test that each bad request is refused with a message that names the disk
// and the problem.
TEST_F(LiveStorage, RefusesBadRequests) {
  EXPECT_THAT(refusal({}), HasSubstr("say where the disks go"));

  LiveStorageOptions unknown;
  unknown.disks = {{"vdz", dst("z.qcow2")}};
  EXPECT_THAT(refusal(unknown), HasSubstr("has no disk 'vdz' (disks: vda, vdb)"));

  LiveStorageOptions twice;
  twice.disks = {{"vda", dst("1.qcow2")}, {"vda", dst("2.qcow2")}};
  EXPECT_THAT(refusal(twice), HasSubstr("disk vda is named twice"));

  LiveStorageOptions same;
  same.disks = {{"vda", dst("x.qcow2")}, {"vdb", dst("x.qcow2")}};
  EXPECT_THAT(refusal(same), HasSubstr("two disks would go to the same file"));

  LiveStorageOptions relative;
  relative.disks = {{"vda", "x.qcow2"}};
  EXPECT_THAT(refusal(relative), HasSubstr("must be an absolute path"));

  LiveStorageOptions own;
  own.disks = {{"vda", src("b.qcow2")}};
  EXPECT_THAT(refusal(own), HasSubstr("of disk vda is a file the VM already uses"));

  EXPECT_THAT(refusal(to(dir_.file("nowhere"))), HasSubstr(dir_.file("nowhere")));

  std::ofstream(dst("a.qcow2")) << "old";
  EXPECT_THAT(refusal(to(dir_.file("dst"))),
              HasSubstr("destination '" + dst("a.qcow2") +
                        "' of disk vda already exists (--force replaces it)"));
  LiveStorageOptions force = to(dir_.file("dst"));
  force.force = true;
  LiveStoragePlan p = plan_live_storage(guest_, force);
  EXPECT_TRUE(p.moves[0].replace_existing);
  EXPECT_FALSE(p.moves[1].replace_existing);

  guest_.state_ = "shut off";
  EXPECT_THAT(refusal(to(dir_.file("dst"))), HasSubstr("is shut off"));
}

// Test that a destination reaching the VM's own file through a symbolic
// link, a hard link or a symlinked directory is refused even with --force.
TEST_F(LiveStorage, RefusesTheVmsOwnFileThroughLinks) {
  LiveStorageOptions o;
  o.force = true;
  std::filesystem::create_symlink(src("a.qcow2"), dst("sym.qcow2"));
  o.disks = {{"vda", dst("sym.qcow2")}};
  EXPECT_THAT(refusal(o), HasSubstr("is the file '" + src("a.qcow2") + "' the VM already uses"));

  std::filesystem::create_hard_link(src("b.qcow2"), dst("hard.qcow2"));
  o.disks = {{"vda", dst("hard.qcow2")}};
  EXPECT_THAT(refusal(o), HasSubstr("is the file '" + src("b.qcow2") + "' the VM already uses"));

  std::filesystem::create_directory_symlink(dir_.file("src"), dir_.file("alias"));
  LiveStorageOptions dir_alias = to(dir_.file("alias"));
  dir_alias.force = true;
  EXPECT_THAT(refusal(dir_alias), HasSubstr("the VM already uses"));
}

// Test that the space check adds up the disks going to one directory, with
// a margin, and names them.
TEST_F(LiveStorage, RefusesTooLittleSpace) {
  guest_.storage_.free = 16u << 20;  // less than the 16 MiB margin plus the data
  EXPECT_THAT(refusal(to(dir_.file("dst"))),
              HasSubstr("not enough space in '" + dir_.file("dst") + "' for disks vda, vdb"));
  guest_.storage_.free = 17u << 20;
  EXPECT_EQ(refusal(to(dir_.file("dst"))), "");
}

// Test that a plan without --shallow needs the backing chain's data too,
// and --shallow notes the backing file it keeps.
TEST_F(LiveStorage, CountsTheBackingChainUnlessShallow) {
  std::ofstream(src("base.qcow2")) << std::string(1 << 20, 'b');
  guest_.disks_[0].backing = {src("base.qcow2")};
  LiveStoragePlan full = plan_live_storage(guest_, to(dir_.file("dst")));
  EXPECT_GE(full.moves[0].need, 4096u + (1u << 20));
  LiveStorageOptions shallow = to(dir_.file("dst"));
  shallow.shallow = true;
  LiveStoragePlan top = plan_live_storage(guest_, shallow);
  EXPECT_EQ(top.moves[0].need, 4096u);
  EXPECT_THAT(top.notes.back(), HasSubstr("keeps its backing file '" + src("base.qcow2") + "'"));
  // A backing file is one of the VM's files too.
  LiveStorageOptions onto_base;
  onto_base.disks = {{"vdb", src("base.qcow2")}};
  EXPECT_THAT(refusal(onto_base), HasSubstr("is a file the VM already uses"));
}

// Test that a run copies, switches, checks, persists and deletes the
// sources, in that order, recording the pause; --bandwidth is split between
// the disks.
TEST_F(LiveStorage, RunMovesAndCleansUp) {
  LiveStorageOptions o = to(dir_.file("dst"));
  o.bandwidth = 10 << 20;
  LiveStoragePlan plan = plan_live_storage(guest_, o);
  FakeContext job;
  Result r = run_live_storage(guest_, plan, o, job);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(r.message, HasSubstr("switch took 7 ms"));
  for (std::size_t i = 0; i < live_storage_steps().size(); ++i)
    EXPECT_EQ(job.steps[i], StepState::kDone) << live_storage_steps()[i];
  ASSERT_EQ(guest_.requests.size(), 2u);
  EXPECT_EQ(guest_.requests[0].bandwidth, 5u << 20);
  EXPECT_EQ(guest_.requests[1].bandwidth, 5u << 20);
  EXPECT_EQ(guest_.pivoted, (std::vector<std::string>{"vda", "vdb"}));
  EXPECT_TRUE(guest_.aborted.empty());
  EXPECT_EQ(job.paused, std::chrono::milliseconds(7));
  EXPECT_EQ(guest_.persisted.at("vda"), dst("a.qcow2"));
  EXPECT_FALSE(std::filesystem::exists(src("a.qcow2")));
  EXPECT_FALSE(std::filesystem::exists(src("b.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(dst("a.qcow2")));
  EXPECT_EQ(job.points, (std::vector<std::string>{"ready", "switched"}));
  // Recovery can tell how far it got: the last state saved says so.
  EXPECT_THAT(job.saved.back(), HasSubstr("done"));
}

// Test that --keep-source keeps the source files and marks cleanup skipped.
TEST_F(LiveStorage, KeepSourceKeepsTheFiles) {
  LiveStorageOptions o = to(dir_.file("dst"));
  o.keep_source = true;
  FakeContext job;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_EQ(job.steps[5], StepState::kSkipped);
  EXPECT_TRUE(std::filesystem::exists(src("a.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(src("b.qcow2")));
}

// Test that a cancel during the copy, or at the ready point, ends every
// copy, removes the destinations, never switches, and keeps the sources.
TEST_F(LiveStorage, CancelUndoesTheCopies) {
  for (std::string where : {"copy", "ready"}) {
    SCOPED_TRACE(where);
    FakeGuest g;
    g.disks_ = guest_.disks_;
    g.polls_until_ready = where == "copy" ? 1000 : 1;
    LiveStorageOptions o = to(dir_.file("dst"));
    FakeContext job;
    if (where == "copy")
      job.cancel_after_progress = 2;
    else
      job.cancel_at = "ready";
    Result r = run_live_storage(g, plan_live_storage(g, o), o, job);
    EXPECT_EQ(r.outcome, Outcome::kCancelled);
    EXPECT_THAT(r.message, HasSubstr("The VM runs on its original disks"));
    EXPECT_EQ(g.aborted, (std::vector<std::string>{"vda", "vdb"}));
    EXPECT_TRUE(g.pivoted.empty());
    EXPECT_EQ(job.steps[1], StepState::kUndone);
    EXPECT_FALSE(job.steps.count(2)) << "the pivot step ran";
    EXPECT_FALSE(std::filesystem::exists(dst("a.qcow2")));
    EXPECT_FALSE(std::filesystem::exists(dst("b.qcow2")));
    EXPECT_TRUE(std::filesystem::exists(src("a.qcow2")));
  }
}

// Test that options survive the job record (JSON) unchanged.
TEST(LiveStorageOptionsJson, RoundTrip) {
  LiveStorageOptions o;
  o.to_dir = "/d";
  o.disks = {{"vda", "/x/a.qcow2"}, {"vdb", ""}};
  o.bandwidth = 123456;
  o.sync_writes = true;
  o.keep_source = true;
  o.force = true;
  o.shallow = true;
  o.progress_timeout = std::chrono::seconds(42);
  LiveStorageOptions back = options_from_json(qmp::Json::parse(to_json(o).dump()));
  EXPECT_EQ(back.to_dir, o.to_dir);
  EXPECT_EQ(back.disks, o.disks);
  EXPECT_EQ(back.bandwidth, o.bandwidth);
  EXPECT_TRUE(back.sync_writes && back.keep_source && back.force && back.shallow);
  EXPECT_EQ(back.progress_timeout, o.progress_timeout);
}

// Test the byte counts people read in plans and results.
TEST(HumanBytes, Units) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(10ull << 30), "10.0 GiB");
}

}  // namespace
}  // namespace vmshift::migrate
