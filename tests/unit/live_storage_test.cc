// plan_live_storage's checks and run_live_storage's steps, on a fake guest
// whose disk files are real files in a temporary directory (LocalStorage),
// with the free space and the copy jobs faked.
#include "migrate/live_storage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/format.h"
#include "base/subprocess.h"
#include "hosts/local_storage.h"
#include "support/fake_job.h"
#include "support/fake_storage.h"
#include "support/scoped_env.h"
#include "support/temp_dir.h"

namespace vmshift::migrate {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using testing::FakeJob;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempDir;

// What the fakes did, in order: "remove PATH", "start vda", "abort vda",
// "pivot vda", "persist".
using Events = std::vector<std::string>;

// A guest whose copy of each disk is ready on its `ready_at`-th status read
// (the 2nd by default), and whose pivot makes the disk use its destination.
class FakeGuest : public guest::Guest {
 public:
  std::string describe() const override { return "VM 'fake'"; }
  std::string state() override { return state_; }
  std::vector<guest::DiskInfo> disks() override { return disks_; }
  hosts::Storage& storage() override { return storage_; }

  void start_copy(const guest::CopyRequest& r) override {
    events.push_back("start " + r.target);
    requests.push_back(r);
    std::ofstream(r.dest) << "copy of " << r.target;  // the host creates the file
    polls[r.target] = 0;
  }
  guest::CopyStatus copy_status(const std::string& target) override {
    int n = ++polls.at(target);
    int at = ready_at.count(target) ? ready_at.at(target) : 2;
    if (copy_error) return {.active = false, .error = copy_error};
    return {.active = true, .ready = n >= at, .done = n >= at ? 100u : 50u, .total = 100};
  }
  void set_copy_bandwidth(const std::string& target, std::uint64_t bps) override {
    bandwidth[target] = bps;
  }
  std::chrono::milliseconds pivot(const std::string& target, Deadline) override {
    events.push_back("pivot " + target);
    if (target == fail_pivot) throw Error(ErrorCode::kCommandFailed, "pivot refused");
    if (target == slow_pivot) throw Error(ErrorCode::kTimeout, "the switch did not finish in time");
    for (const auto& r : requests)
      if (r.target == target) active[target] = r.dest;
    return std::chrono::milliseconds(target == "vda" ? 3 : 9);
  }
  void abort_copy(const std::string& target, Deadline) override {
    events.push_back("abort " + target);
    if (target == fail_abort) throw Error(ErrorCode::kTimeout, "no answer");
  }
  std::string active_path(const std::string& target) override {
    if (wrong_active) return "/somewhere/else";
    if (active.count(target)) return active.at(target);
    for (const auto& d : disks_)
      if (d.target == target) return d.path;
    return "";
  }
  std::string persist_paths(const std::map<std::string, std::string>& paths) override {
    events.push_back("persist");
    if (fail_persist) throw Error(ErrorCode::kCommandFailed, "define refused");
    persisted = paths;
    return "definition updated";
  }

  int pivot_count() const {
    int n = 0;
    for (const auto& e : events) n += e.rfind("pivot ", 0) == 0;
    return n;
  }

  Events events;
  std::string state_ = "running";
  std::vector<guest::DiskInfo> disks_;
  testing::RecordingStorage storage_{events};
  std::map<std::string, int> ready_at;
  std::optional<std::string> copy_error;
  std::string fail_pivot, slow_pivot, fail_abort;
  bool wrong_active = false, fail_persist = false;

  std::map<std::string, int> polls;
  std::vector<guest::CopyRequest> requests;
  std::map<std::string, std::uint64_t> bandwidth;
  std::map<std::string, std::string> active;
  std::map<std::string, std::string> persisted;
};

// Step indexes, as live_storage_steps() names them.
enum : std::size_t { kCheck, kCopy, kPivot, kVerify, kPersist, kCleanup };

std::string st(std::size_t index, StepState s) {
  return std::to_string(index) + ":" + std::to_string(static_cast<int>(s));
}

class LiveStoragePlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.file("src"));
    std::filesystem::create_directories(dir_.file("dst"));
    // allocation differs from the file size on purpose: the plan must take
    // the guest's figure, not the file's.
    add_disk("vda", src("a.qcow2"), 100, 4096);
    add_disk("vdb", src("b.qcow2"), 100, 8192);
  }
  void add_disk(const std::string& target, const std::string& path, std::size_t file_bytes,
                std::uint64_t allocation) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << std::string(file_bytes, 'x');
    guest_.disks_.push_back({.target = target,
                             .path = path,
                             .format = "qcow2",
                             .capacity = 1ull << 30,
                             .allocation = allocation});
  }
  std::string src(const std::string& f) const { return dir_.file("src/" + f); }
  std::string dst(const std::string& f) const { return dir_.file("dst/" + f); }

  LiveStorageOptions to(const std::string& dir) const {
    LiveStorageOptions o;
    o.to_dir = dir;
    return o;
  }
  // The refusal: its code and message; fails the test if the plan passes.
  std::pair<ErrorCode, std::string> refusal(const LiveStorageOptions& o) {
    try {
      LiveStoragePlan p = plan_live_storage(guest_, o);
      ADD_FAILURE() << "the plan was accepted with " << p.moves.size() << " moves";
      return {ErrorCode::kInternal, ""};
    } catch (const Error& e) {
      return {e.code(), e.what()};
    }
  }

  TempDir dir_{"vmslsp"};
  FakeGuest guest_;
};

// ---- plan: where the disks go

// Test that --to DIR moves every disk into DIR under its own file name, and
// copies the disk's target, source, format, capacity and allocation.
TEST_F(LiveStoragePlanTest, ToDirMovesEveryDiskKeepingItsName) {
  LiveStoragePlan p = plan_live_storage(guest_, to(dir_.file("dst")));
  ASSERT_EQ(p.moves.size(), 2u);
  EXPECT_EQ(p.moves[0].target, "vda");
  EXPECT_EQ(p.moves[0].source, src("a.qcow2"));
  EXPECT_EQ(p.moves[0].dest, dst("a.qcow2"));
  EXPECT_EQ(p.moves[0].format, "qcow2");
  EXPECT_EQ(p.moves[0].capacity, 1ull << 30);
  EXPECT_EQ(p.moves[0].need, 4096u);
  EXPECT_FALSE(p.moves[0].replace_existing);
  EXPECT_EQ(p.moves[1].target, "vdb");
  EXPECT_EQ(p.moves[1].dest, dst("b.qcow2"));
  EXPECT_EQ(p.moves[1].need, 8192u);
  EXPECT_THAT(p.notes, ElementsAre(HasSubstr("only disks move")));
}

// Test that trailing slashes of --to do not end up in the destination path.
TEST_F(LiveStoragePlanTest, ToDirWithTrailingSlashes) {
  LiveStoragePlan p = plan_live_storage(guest_, to(dir_.file("dst//")));
  ASSERT_EQ(p.moves.size(), 2u);
  EXPECT_EQ(p.moves[0].dest, dst("a.qcow2"));
}

// Test that --to skips a drive without a file (an empty CD-ROM) and moves
// the others.
TEST_F(LiveStoragePlanTest, ToDirSkipsDrivesWithoutAFile) {
  guest_.disks_.push_back({.target = "hdc", .path = "", .format = "raw"});
  LiveStoragePlan p = plan_live_storage(guest_, to(dir_.file("dst")));
  ASSERT_EQ(p.moves.size(), 2u);
  EXPECT_EQ(p.moves[0].target, "vda");
  EXPECT_EQ(p.moves[1].target, "vdb");
}

// Test that --disk vda=PATH moves only vda, to exactly PATH, without the
// --to note.
TEST_F(LiveStoragePlanTest, DiskWithPathMovesOnlyThatDisk) {
  std::filesystem::create_directories(dir_.file("x"));
  LiveStorageOptions o;
  o.disks = {{"vda", dir_.file("x/y")}};
  LiveStoragePlan p = plan_live_storage(guest_, o);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].target, "vda");
  EXPECT_EQ(p.moves[0].source, src("a.qcow2"));
  EXPECT_EQ(p.moves[0].dest, dir_.file("x/y"));
  EXPECT_EQ(p.moves[0].need, 4096u);
  EXPECT_TRUE(p.notes.empty());
}

// Test that --disk vdb with --to DIR moves only vdb, into DIR.
TEST_F(LiveStoragePlanTest, DiskWithToMovesOnlyThatDiskIntoDir) {
  LiveStorageOptions o = to(dir_.file("dst"));
  o.disks = {{"vdb", ""}};
  LiveStoragePlan p = plan_live_storage(guest_, o);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].target, "vdb");
  EXPECT_EQ(p.moves[0].dest, dst("b.qcow2"));
}

// Test that a paused VM can be planned for too, not only a running one.
TEST_F(LiveStoragePlanTest, PausedVmIsAccepted) {
  guest_.state_ = "paused";
  EXPECT_EQ(plan_live_storage(guest_, to(dir_.file("dst"))).moves.size(), 2u);
}

// Test that the backing chain goes into the plan, and its allocated bytes
// into the space needed, unless --shallow (which notes the file it keeps).
TEST_F(LiveStoragePlanTest, BackingChainIsCopiedIntoThePlan) {
  std::ofstream(src("base.qcow2")) << std::string(256 << 10, 'b');
  std::ofstream(src("base0.qcow2")) << std::string(128 << 10, 'c');
  guest_.disks_[0].backing = {src("base.qcow2"), src("base0.qcow2")};
  std::uint64_t chain = *hosts::LocalStorage().allocation(src("base.qcow2")) +
                        *hosts::LocalStorage().allocation(src("base0.qcow2"));
  ASSERT_GT(chain, 0u);

  LiveStoragePlan full = plan_live_storage(guest_, to(dir_.file("dst")));
  EXPECT_EQ(full.moves[0].backing, guest_.disks_[0].backing);
  EXPECT_EQ(full.moves[0].need, 4096u + chain);
  EXPECT_TRUE(full.moves[1].backing.empty());
  EXPECT_EQ(full.moves[1].need, 8192u);

  LiveStorageOptions o = to(dir_.file("dst"));
  o.shallow = true;
  LiveStoragePlan top = plan_live_storage(guest_, o);
  EXPECT_EQ(top.moves[0].backing, guest_.disks_[0].backing);
  EXPECT_EQ(top.moves[0].need, 4096u);
  EXPECT_THAT(top.notes, ::testing::Contains(HasSubstr("disk vda keeps its backing file '" +
                                                       src("base.qcow2") + "' (--shallow)")));
}

// ---- plan: refusals

// Test that a VM that is not running (or paused) is refused, naming the VM
// and its state.
TEST_F(LiveStoragePlanTest, RefusesVmNotRunning) {
  guest_.state_ = "shut off";
  auto [code, msg] = refusal(to(dir_.file("dst")));
  EXPECT_EQ(code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(msg, HasSubstr("VM 'fake' is shut off: a live storage migration needs a running"));
}

// Test that a request with neither --to nor --disk is refused, saying what
// to write; so is --disk TARGET without a path when there is no --to.
TEST_F(LiveStoragePlanTest, RefusesNoDestination) {
  auto [code, msg] = refusal({});
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("--to DIR or --disk TARGET=PATH"));

  LiveStorageOptions o;
  o.disks = {{"vda", ""}};
  auto [code2, msg2] = refusal(o);
  EXPECT_EQ(code2, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg2, HasSubstr("disk vda has no destination: write --disk vda=PATH or add --to"));
}

// Test that --disk naming a disk the VM does not have is refused, listing
// the disks it has.
TEST_F(LiveStoragePlanTest, RefusesUnknownDisk) {
  LiveStorageOptions o;
  o.disks = {{"vda", dst("a.qcow2")}, {"sdz", dst("z.qcow2")}};
  auto [code, msg] = refusal(o);
  EXPECT_EQ(code, ErrorCode::kNotFound);
  EXPECT_THAT(msg, HasSubstr("VM 'fake' has no disk 'sdz' (disks: vda, vdb)"));
}

// Test that a destination directory that does not exist is refused, naming
// it, whether it comes from --to or from --disk.
TEST_F(LiveStoragePlanTest, RefusesMissingDestinationDirectory) {
  auto [code, msg] = refusal(to(dir_.file("nowhere")));
  EXPECT_EQ(code, ErrorCode::kNotFound);
  EXPECT_THAT(msg, HasSubstr("'" + dir_.file("nowhere") + "'"));

  LiveStorageOptions o;
  o.disks = {{"vdb", dir_.file("nowhere/deeper/b.qcow2")}};
  auto [code2, msg2] = refusal(o);
  EXPECT_EQ(code2, ErrorCode::kNotFound);
  EXPECT_THAT(msg2, HasSubstr("'" + dir_.file("nowhere/deeper") + "'"));
  EXPECT_FALSE(std::filesystem::exists(dir_.file("nowhere")));  // nothing was created
}

// Test that two disks sent to one file are refused, whether named so with
// --disk or because --to puts two files of the same name in one directory.
TEST_F(LiveStoragePlanTest, RefusesTwoDisksToTheSameFile) {
  LiveStorageOptions o;
  o.disks = {{"vda", dst("x.qcow2")}, {"vdb", dst("x.qcow2")}};
  auto [code, msg] = refusal(o);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("two disks would go to the same file '" + dst("x.qcow2") + "'"));

  add_disk("vdc", dir_.file("other/a.qcow2"), 10, 10);  // same name as vda's file
  auto [code2, msg2] = refusal(to(dir_.file("dst")));
  EXPECT_EQ(code2, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg2, HasSubstr("two disks would go to the same file '" + dst("a.qcow2") + "'"));
}

// Test that a disk named twice with --disk is refused.
TEST_F(LiveStoragePlanTest, RefusesDiskNamedTwice) {
  LiveStorageOptions o;
  o.disks = {{"vdb", dst("1.qcow2")}, {"vdb", dst("2.qcow2")}};
  auto [code, msg] = refusal(o);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("disk vdb is named twice with --disk"));
}

// Test that a relative destination is refused, naming it and the disk.
TEST_F(LiveStoragePlanTest, RefusesRelativeDestination) {
  LiveStorageOptions o;
  o.disks = {{"vda", "dst/a.qcow2"}};
  auto [code, msg] = refusal(o);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("destination 'dst/a.qcow2' of disk vda must be an absolute path"));
}

// Test that an existing destination is refused without --force, naming the
// disk and the file, and nothing is removed by planning.
TEST_F(LiveStoragePlanTest, RefusesExistingDestination) {
  std::ofstream(dst("b.qcow2")) << "old";
  auto [code, msg] = refusal(to(dir_.file("dst")));
  EXPECT_EQ(code, ErrorCode::kAlreadyExists);
  EXPECT_THAT(msg, HasSubstr("destination '" + dst("b.qcow2") +
                             "' of disk vdb already exists (--force replaces it)"));
  EXPECT_TRUE(std::filesystem::exists(dst("b.qcow2")));
  EXPECT_TRUE(guest_.storage_.removed.empty());
}

// Test that --force accepts an existing destination and marks only that
// move replace_existing; planning still removes nothing.
TEST_F(LiveStoragePlanTest, ForceAcceptsExistingDestination) {
  std::ofstream(dst("b.qcow2")) << "old";
  LiveStorageOptions o = to(dir_.file("dst"));
  o.force = true;
  LiveStoragePlan p = plan_live_storage(guest_, o);
  ASSERT_EQ(p.moves.size(), 2u);
  EXPECT_FALSE(p.moves[0].replace_existing);
  EXPECT_TRUE(p.moves[1].replace_existing);
  EXPECT_TRUE(std::filesystem::exists(dst("b.qcow2")));
  EXPECT_TRUE(guest_.storage_.removed.empty());
}

// Test that a destination that is the path of a file the VM uses (another
// disk's file) is refused, even with --force.
TEST_F(LiveStoragePlanTest, RefusesTheSamePathAsAFileInUse) {
  LiveStorageOptions o;
  o.force = true;
  o.disks = {{"vda", src("b.qcow2")}};
  auto [code, msg] = refusal(o);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("destination '" + src("b.qcow2") +
                             "' of disk vda is a file the VM already uses"));
}

// Test that a destination that is a symbolic link to a file the VM uses is
// refused, even with --force, naming the file it reaches.
TEST_F(LiveStoragePlanTest, RefusesASymlinkToAFileInUse) {
  std::filesystem::create_symlink(src("a.qcow2"), dst("link.qcow2"));
  LiveStorageOptions o;
  o.force = true;
  o.disks = {{"vdb", dst("link.qcow2")}};
  auto [code, msg] = refusal(o);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("destination '" + dst("link.qcow2") + "' of disk vdb is the file '" +
                             src("a.qcow2") + "' the VM already uses"));
  EXPECT_TRUE(std::filesystem::exists(src("a.qcow2")));
}

// Test that a destination that is a hard link to a file the VM uses (the
// same inode under another name) is refused, even with --force.
TEST_F(LiveStoragePlanTest, RefusesAHardLinkToAFileInUse) {
  std::filesystem::create_hard_link(src("b.qcow2"), dst("b.qcow2"));
  LiveStorageOptions o = to(dir_.file("dst"));
  o.force = true;
  auto [code, msg] = refusal(o);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("destination '" + dst("b.qcow2") + "' of disk vdb is the file '" +
                             src("b.qcow2") + "' the VM already uses"));
}

// Test that a destination reaching the VM's file through a symlinked
// directory (the same directory under another name) is refused, even with
// --force.
TEST_F(LiveStoragePlanTest, RefusesADirectoryAliasOfAFileInUse) {
  std::filesystem::create_directory_symlink(dir_.file("src"), dir_.file("alias"));
  LiveStorageOptions o = to(dir_.file("alias"));
  o.force = true;
  auto [code, msg] = refusal(o);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("the VM already uses"));
}

// Test that a backing file counts as a file the VM uses: a destination
// reaching it through a link is refused too.
TEST_F(LiveStoragePlanTest, RefusesALinkToABackingFile) {
  std::ofstream(src("base.qcow2")) << "base";
  guest_.disks_[0].backing = {src("base.qcow2")};
  std::filesystem::create_symlink(src("base.qcow2"), dst("b.qcow2"));
  LiveStorageOptions o = to(dir_.file("dst"));
  o.force = true;
  auto [code, msg] = refusal(o);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("of disk vdb is the file '" + src("base.qcow2") + "'"));
}

// Test that too little free space is refused, naming the directory, the
// disks, and the sizes; the need is the allocation plus 5% and 16 MiB, so
// exactly that much free is enough and one byte less is not.
TEST_F(LiveStoragePlanTest, RefusesTooLittleFreeSpace) {
  const std::uint64_t need = 4096 + 8192;
  const std::uint64_t want = need + need / 20 + (16u << 20);
  guest_.storage_.free = want - 1;
  auto [code, msg] = refusal(to(dir_.file("dst")));
  EXPECT_EQ(code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(msg, HasSubstr("not enough space in '" + dir_.file("dst") +
                             "' for disks vda, vdb: " + human_bytes(want) + " needed (" +
                             human_bytes(need) + " of allocated data and a margin), " +
                             human_bytes(want - 1) + " free"));
  guest_.storage_.free = want;
  EXPECT_EQ(plan_live_storage(guest_, to(dir_.file("dst"))).moves.size(), 2u);
}

// Test that the free space is checked per directory: one disk alone in a
// full directory is named alone ("disk", not "disks").
TEST_F(LiveStoragePlanTest, FreeSpaceIsPerDirectory) {
  std::filesystem::create_directories(dir_.file("dst2"));
  guest_.storage_.free = 1024;
  LiveStorageOptions o;
  o.disks = {{"vdb", dir_.file("dst2/b.qcow2")}};
  auto [code, msg] = refusal(o);
  EXPECT_EQ(code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(msg, HasSubstr("not enough space in '" + dir_.file("dst2") + "' for disk vdb: "));
  EXPECT_THAT(msg, HasSubstr("1.0 KiB free"));
}

// Test that naming a drive without a file (an empty CD-ROM) with --disk is
// refused in the plan, naming it, instead of planning a copy of nothing.
TEST_F(LiveStoragePlanTest, RefusesADriveWithoutAFile) {
  guest_.disks_.push_back({.target = "hdc", .path = "", .format = "raw"});
  LiveStorageOptions o;
  o.disks = {{"hdc", dst("cd.iso")}};
  auto [code, msg] = refusal(o);
  EXPECT_THAT(msg, HasSubstr("hdc"));
  EXPECT_THAT(msg, Not(HasSubstr("already exists")));

  LiveStorageOptions forced = to(dir_.file("dst"));
  forced.disks = {{"hdc", ""}};
  forced.force = true;
  auto [code2, msg2] = refusal(forced);
  EXPECT_THAT(msg2, HasSubstr("hdc"));
}

// ---- options in the job record

// Test that every option survives encoding and decoding.
TEST(LiveStorageOptionsJsonTest, RoundTripsEveryField) {
  LiveStorageOptions o;
  o.to_dir = "/srv/fast";
  o.disks = {{"vda", "/x/y.qcow2"}, {"vdb", ""}};
  o.bandwidth = 5ull << 32;  // more than 32 bits
  o.sync_writes = true;
  o.keep_source = true;
  o.force = true;
  o.shallow = true;
  o.progress_timeout = std::chrono::seconds(7);
  LiveStorageOptions back = codec::parse<LiveStorageOptions>(codec::dump(o), "options");
  EXPECT_EQ(back.to_dir, o.to_dir);
  EXPECT_EQ(back.disks, o.disks);
  EXPECT_EQ(back.bandwidth, o.bandwidth);
  EXPECT_TRUE(back.sync_writes);
  EXPECT_TRUE(back.keep_source);
  EXPECT_TRUE(back.force);
  EXPECT_TRUE(back.shallow);
  EXPECT_EQ(back.progress_timeout, std::chrono::seconds(7));
}

// Test that default options (no --to, no --disk, all flags off) come back
// the same: no destination directory appears, no flag turns on.
TEST(LiveStorageOptionsJsonTest, RoundTripsDefaults) {
  LiveStorageOptions back =
      codec::parse<LiveStorageOptions>(codec::dump(LiveStorageOptions{}), "options");
  EXPECT_FALSE(back.to_dir);
  EXPECT_TRUE(back.disks.empty());
  EXPECT_EQ(back.bandwidth, 0u);
  EXPECT_FALSE(back.sync_writes || back.keep_source || back.force || back.shallow);
  EXPECT_EQ(back.progress_timeout, LiveStorageOptions{}.progress_timeout);
}

// ---- LocalStorage::create_image

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Test that create_image makes a private, empty image of the asked format
// and size, and refuses a path that exists, a symbolic link to another
// file among them, leaving that file as it was.
TEST(LocalStorageCreate, RefusesAnExistingPathOrALink) {
  TempDir dir;
  hosts::LocalStorage st;
  st.create_image({.path = dir.file("a.qcow2"), .format = "qcow2", .capacity = 8 << 20});
  RunResult info = run_checked(Argv{"qemu-img", "info", "--output=json", dir.file("a.qcow2")},
                               Deadline::after(std::chrono::seconds(30)));
  EXPECT_THAT(info.out, HasSubstr("\"virtual-size\": 8388608"));
  EXPECT_THAT(info.out, HasSubstr("\"format\": \"qcow2\""));
  EXPECT_EQ(
      std::filesystem::status(dir.file("a.qcow2")).permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

  std::ofstream(dir.file("victim")) << "data of another file";
  std::filesystem::create_symlink(dir.file("victim"), dir.file("link.qcow2"));
  try {
    st.create_image({.path = dir.file("link.qcow2"), .format = "qcow2", .capacity = 1 << 20});
    ADD_FAILURE() << "a symbolic link was accepted as a new image";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists) << e.what();
    EXPECT_THAT(e.what(), HasSubstr("already exists"));
  }
  EXPECT_EQ(read_all(dir.file("victim")), "data of another file");
}

// Test that a symbolic link planted at the path while the image is being
// made (after vmshift looked) is not followed: the file it points at stays
// as it was, and the create fails saying the path was replaced. The race
// is made certain by a qemu-img in $PATH that plants the link, then runs
// the real one.
TEST(LocalStorageCreate, LinkPlantedDuringTheCreateIsNotFollowed) {
  TempDir dir;
  std::optional<std::string> real = find_program("qemu-img");
  ASSERT_TRUE(real);
  std::filesystem::create_directory(dir.file("bin"));
  std::ofstream(dir.file("bin/qemu-img")) << "#!/bin/sh\n"
                                             "rm -f \"$PLANT_AT\"\n"
                                             "ln -s \"$VICTIM\" \"$PLANT_AT\"\n"
                                             "exec "
                                          << *real << " \"$@\"\n";
  std::filesystem::permissions(dir.file("bin/qemu-img"), std::filesystem::perms::owner_all);
  std::ofstream(dir.file("victim")) << "data of another file";
  std::string path = dir.file("new.qcow2");
  testing::ScopedEnv env_path("PATH", dir.file("bin") + ":" + ::getenv("PATH"));
  testing::ScopedEnv env_at("PLANT_AT", path);
  testing::ScopedEnv env_victim("VICTIM", dir.file("victim"));
  hosts::LocalStorage st;
  for (const char* format : {"qcow2", "raw"}) {
    SCOPED_TRACE(format);
    std::filesystem::remove(path);
    try {
      st.create_image({.path = path, .format = format, .capacity = 1 << 20});
      ADD_FAILURE() << "the create did not notice the replaced path";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("was replaced while vmshift created it"));
    }
    EXPECT_TRUE(read_all(dir.file("victim")) == "data of another file")
        << "the file the link points at was written";
    EXPECT_TRUE(std::filesystem::is_symlink(path)) << "the planted link is not vmshift's to remove";
  }
}

// ---- run

// Test that a run whose copies are ready on the second poll goes through
// every step in order, switches every disk, persists the new paths and
// removes the sources.
TEST_F(LiveStoragePlanTest, RunCompletesAndRemovesSources) {
  LiveStorageOptions o = to(dir_.file("dst"));
  LiveStoragePlan plan = plan_live_storage(guest_, o);
  FakeJob job;
  Result r = run_live_storage(guest_, plan, o, job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(job.trace(),
              ElementsAre(st(kCheck, StepState::kDone), st(kCopy, StepState::kRunning),
                          st(kCopy, StepState::kDone), st(kPivot, StepState::kRunning),
                          st(kPivot, StepState::kDone), st(kVerify, StepState::kRunning),
                          st(kVerify, StepState::kDone), st(kPersist, StepState::kDone),
                          st(kCleanup, StepState::kDone)));
  EXPECT_EQ(guest_.polls.at("vda"), 2);  // not ready, then ready
  EXPECT_EQ(guest_.polls.at("vdb"), 2);
  EXPECT_THAT(job.phases, ElementsAre("copy", "ready"));
  EXPECT_EQ(job.last_done, 200u);
  EXPECT_EQ(job.last_total, 200u);
  EXPECT_THAT(guest_.events,
              ElementsAre("start vda", "start vdb", "pivot vda", "pivot vdb", "persist",
                          "remove " + src("a.qcow2"), "remove " + src("b.qcow2")));
  EXPECT_EQ(job.paused, std::chrono::milliseconds(9));  // the longest switch
  EXPECT_EQ(guest_.persisted,
            (std::map<std::string, std::string>{{"vda", dst("a.qcow2")}, {"vdb", dst("b.qcow2")}}));
  EXPECT_FALSE(std::filesystem::exists(src("a.qcow2")));
  EXPECT_FALSE(std::filesystem::exists(src("b.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(dst("a.qcow2")));
  EXPECT_THAT(r.message, HasSubstr("switch took 9 ms"));
  EXPECT_THAT(r.message, HasSubstr("source files deleted"));
  EXPECT_THAT(job.points, ElementsAre("ready", "switched"));
  EXPECT_THAT(job.saved.back(), HasSubstr("\"done\""));
}

// Test that the copy requests carry the options: format, shallow, sync
// writes, and the bandwidth shared by the disks, given back to the disk
// still copying once the other is ready.
TEST_F(LiveStoragePlanTest, RunPassesOptionsToTheCopies) {
  LiveStorageOptions o = to(dir_.file("dst"));
  o.bandwidth = 10 << 20;
  o.sync_writes = true;
  o.shallow = true;
  guest_.ready_at = {{"vda", 1}, {"vdb", 2}};
  FakeJob job;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  ASSERT_EQ(guest_.requests.size(), 2u);
  for (const auto& req : guest_.requests) {
    EXPECT_EQ(req.format, "qcow2");
    EXPECT_TRUE(req.shallow);
    EXPECT_TRUE(req.sync_writes);
    EXPECT_EQ(req.bandwidth, 5u << 20);
  }
  EXPECT_EQ(guest_.requests[0].dest, dst("a.qcow2"));
  EXPECT_EQ(guest_.bandwidth, (std::map<std::string, std::uint64_t>{{"vdb", 10u << 20}}));
}

// Test that --keep-source keeps the source files, removes nothing, and
// marks the cleanup step skipped.
TEST_F(LiveStoragePlanTest, RunWithKeepSourceRemovesNothing) {
  LiveStorageOptions o = to(dir_.file("dst"));
  o.keep_source = true;
  FakeJob job;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_EQ(guest_.pivot_count(), 2);
  EXPECT_EQ(job.last(kCleanup), StepState::kSkipped);
  EXPECT_TRUE(guest_.storage_.removed.empty());
  EXPECT_TRUE(std::filesystem::exists(src("a.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(src("b.qcow2")));
  EXPECT_THAT(r.message, HasSubstr("--keep-source"));
}

// Test that --force never replaces a file another defined VM uses (a disk
// of the same file name in the destination directory), and names that VM;
// the file is untouched.
TEST_F(LiveStoragePlanTest, ForceNeverReplacesAnotherVmsDisk) {
  std::ofstream(dst("b.qcow2")) << "another VM's disk";
  LiveStorageOptions o = to(dir_.file("dst"));
  o.force = true;
  std::map<std::string, std::string> in_use = {{dst("b.qcow2"), "VM 'other' on host 'host1'"}};
  try {
    LiveStoragePlan p = plan_live_storage(guest_, o, in_use);
    ADD_FAILURE() << "the plan was accepted: it would replace " << dst("b.qcow2");
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("VM 'other' on host 'host1' uses it"));
  }
  std::ifstream in(dst("b.qcow2"));
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "another VM's disk");
}

// Test that the plan says which file --force will replace.
TEST_F(LiveStoragePlanTest, ForceSaysWhatItReplaces) {
  std::ofstream(dst("b.qcow2")) << "old";
  LiveStorageOptions o = to(dir_.file("dst"));
  o.force = true;
  LiveStoragePlan p = plan_live_storage(guest_, o, {{dst("c.qcow2"), "VM 'other' on host 'h'"}});
  EXPECT_THAT(p.notes, ::testing::Contains(HasSubstr("--force replaces '" + dst("b.qcow2") + "'")));
  ASSERT_TRUE(p.moves.at(1).replaces.has_value());
}

// Test that a destination file replaced by another (a new inode) after the
// copy made it is left in place by the undo of a cancelled copy.
TEST_F(LiveStoragePlanTest, CancelLeavesAReplacedDestination) {
  LiveStorageOptions o = to(dir_.file("dst"));
  // At the first progress report (both copies started), another file takes
  // the place of vda's; then a cancel.
  class ReplacingJob : public FakeJob {
   public:
    std::string dest;
    void progress(std::string_view phase, std::uint64_t done, std::uint64_t total) override {
      if (!cancel) {
        std::ofstream(dest + ".new") << "someone else's";
        std::filesystem::rename(dest + ".new", dest);
      }
      FakeJob::progress(phase, done, total);
    }
  } job;
  job.dest = dst("a.qcow2");
  job.cancel_on_progress = true;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  EXPECT_EQ(r.outcome, Outcome::kCancelled);
  ASSERT_TRUE(std::filesystem::exists(dst("a.qcow2")));
  std::ifstream in(dst("a.qcow2"));
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), "someone else's");
  EXPECT_THAT(r.message, HasSubstr("left '" + dst("a.qcow2") + "' in place"));
  EXPECT_FALSE(std::filesystem::exists(dst("b.qcow2")));
}

// Test that with --force the old destination file is removed before its
// copy starts, and only that one.
TEST_F(LiveStoragePlanTest, RunRemovesAReplacedDestinationFirst) {
  std::ofstream(dst("b.qcow2")) << "old";
  LiveStorageOptions o = to(dir_.file("dst"));
  o.force = true;
  o.keep_source = true;
  FakeJob job;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(guest_.events, ElementsAre("start vda", "remove " + dst("b.qcow2"), "start vdb",
                                         "pivot vda", "pivot vdb", "persist"));
}

// Test that a cancel before the copies are ready ends every copy, removes
// each destination after its copy ended, never switches, and keeps the
// sources.
TEST_F(LiveStoragePlanTest, CancelBeforeReadyUndoesTheCopies) {
  LiveStorageOptions o = to(dir_.file("dst"));
  FakeJob job;
  job.cancel_on_progress = true;  // after the first poll, which is not ready
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  EXPECT_EQ(r.outcome, Outcome::kCancelled);
  EXPECT_THAT(r.message, HasSubstr("Cancelled by request during the copy"));
  EXPECT_THAT(r.message, HasSubstr("The VM runs on its original disks (vda on " + src("a.qcow2") +
                                   ", vdb on " + src("b.qcow2") + ")"));
  EXPECT_THAT(guest_.events,
              ElementsAre("start vda", "start vdb", "abort vda", "remove " + dst("a.qcow2"),
                          "abort vdb", "remove " + dst("b.qcow2")));
  EXPECT_EQ(job.last(kCopy), StepState::kUndone);
  EXPECT_FALSE(job.last(kPivot));
  EXPECT_FALSE(std::filesystem::exists(dst("a.qcow2")));
  EXPECT_FALSE(std::filesystem::exists(dst("b.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(src("a.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(src("b.qcow2")));
  EXPECT_TRUE(guest_.persisted.empty());
}

// Test that a cancel at the "ready" point, after the copies are in sync but
// before the switch, undoes the copies the same way.
TEST_F(LiveStoragePlanTest, CancelAtReadyUndoesTheCopies) {
  LiveStorageOptions o = to(dir_.file("dst"));
  guest_.ready_at = {{"vda", 1}, {"vdb", 1}};
  FakeJob job;
  job.cancel_at = "ready";
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  EXPECT_EQ(r.outcome, Outcome::kCancelled);
  EXPECT_THAT(r.message, HasSubstr("Cancelled by request before the switch"));
  EXPECT_THAT(guest_.storage_.removed, ElementsAre(dst("a.qcow2"), dst("b.qcow2")));
  EXPECT_EQ(guest_.pivot_count(), 0);
  EXPECT_EQ(job.last(kCopy), StepState::kUndone);
}

// Test that a copy that cannot be ended keeps its destination file (a live
// job may still write it) and the message says so; the other is undone.
TEST_F(LiveStoragePlanTest, CancelKeepsTheFileOfACopyThatWouldNotEnd) {
  LiveStorageOptions o = to(dir_.file("dst"));
  guest_.fail_abort = "vda";
  FakeJob job;
  job.cancel_on_progress = true;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  EXPECT_EQ(r.outcome, Outcome::kCancelled);
  EXPECT_THAT(guest_.storage_.removed, ElementsAre(dst("b.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(dst("a.qcow2")));
  EXPECT_THAT(r.message, HasSubstr("the copy of vda could not be cancelled: no answer"));
}

// Test that a copy that stops with an error fails the run before any
// switch, naming the disk and the error, and undoes the copies.
TEST_F(LiveStoragePlanTest, CopyErrorFailsBeforeTheSwitch) {
  LiveStorageOptions o = to(dir_.file("dst"));
  guest_.copy_error = "No space left on device";
  FakeJob job;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message,
              HasSubstr("Copy failed: the copy of disk vda stopped: No space left on device"));
  EXPECT_EQ(job.last(kCopy), StepState::kFailed);
  EXPECT_EQ(guest_.pivot_count(), 0);
  EXPECT_THAT(guest_.storage_.removed, ElementsAre(dst("a.qcow2"), dst("b.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(src("a.qcow2")));
}

// Test that when the second switch fails, the first disk stays switched,
// the second's copy is ended and its file removed, and no source is deleted.
TEST_F(LiveStoragePlanTest, FailedSecondPivotLeavesFirstSwitched) {
  LiveStorageOptions o = to(dir_.file("dst"));
  guest_.fail_pivot = "vdb";
  FakeJob job;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("Switching disk vdb failed: pivot refused."));
  EXPECT_THAT(r.message, HasSubstr("Already switched, and running on the new files: vda on " +
                                   dst("a.qcow2")));
  EXPECT_THAT(r.message, HasSubstr("Still on the original files: vdb on " + src("b.qcow2")));
  EXPECT_THAT(guest_.storage_.removed, ElementsAre(dst("b.qcow2")));
  EXPECT_EQ(job.last(kPivot), StepState::kFailed);
  EXPECT_TRUE(std::filesystem::exists(src("a.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(src("b.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(dst("a.qcow2")));
}

// Test that a switch that did not finish by its deadline (QEMU may still
// make it) leaves both of that disk's files and its copy job alone, while
// the disks not yet switched are undone as for any failure.
TEST_F(LiveStoragePlanTest, TimedOutSwitchKeepsBothFilesOfThatDisk) {
  LiveStorageOptions o = to(dir_.file("dst"));
  guest_.slow_pivot = "vda";
  FakeJob job;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message,
              HasSubstr("Switching disk vda failed: the switch did not finish in time."));
  EXPECT_THAT(r.message,
              HasSubstr("disk vda runs on '" + src("a.qcow2") + "' until it does and on '" +
                        dst("a.qcow2") + "' after; both files are kept"));
  EXPECT_THAT(r.message, HasSubstr("Still on the original files: vdb on " + src("b.qcow2")));
  EXPECT_THAT(r.message, HasSubstr("No source file was deleted."));
  EXPECT_THAT(guest_.events, Not(Contains("abort vda")));
  EXPECT_THAT(guest_.events, Contains("abort vdb"));
  EXPECT_THAT(guest_.storage_.removed, ElementsAre(dst("b.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(dst("a.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(src("a.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(src("b.qcow2")));
  EXPECT_TRUE(guest_.persisted.empty());
  EXPECT_EQ(job.last(kPivot), StepState::kFailed);
}

// Test that a guest not using the new file after the switch fails the
// verify step and deletes no source.
TEST_F(LiveStoragePlanTest, VerifyFailureKeepsSources) {
  LiveStorageOptions o = to(dir_.file("dst"));
  guest_.wrong_active = true;
  FakeJob job;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message,
              HasSubstr("disk vda uses '/somewhere/else' instead of '" + dst("a.qcow2") + "'"));
  EXPECT_EQ(job.last(kVerify), StepState::kFailed);
  EXPECT_TRUE(guest_.storage_.removed.empty());
  EXPECT_TRUE(guest_.persisted.empty());
}

// Test that a failed persist keeps the source files (a restart would use
// them) and says so.
TEST_F(LiveStoragePlanTest, PersistFailureKeepsSources) {
  LiveStorageOptions o = to(dir_.file("dst"));
  guest_.fail_persist = true;
  FakeJob job;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.message, HasSubstr("could not be updated: define refused"));
  EXPECT_EQ(job.last(kPersist), StepState::kFailed);
  EXPECT_FALSE(job.last(kCleanup));
  EXPECT_TRUE(guest_.storage_.removed.empty());
  EXPECT_TRUE(std::filesystem::exists(src("a.qcow2")));
}

// Test that cleanup deletes only the top layer: backing files stay, and the
// note names them.
TEST_F(LiveStoragePlanTest, CleanupLeavesBackingFiles) {
  std::ofstream(src("base.qcow2")) << "base";
  guest_.disks_[0].backing = {src("base.qcow2")};
  LiveStorageOptions o = to(dir_.file("dst"));
  FakeJob job;
  Result r = run_live_storage(guest_, plan_live_storage(guest_, o), o, job);
  ASSERT_EQ(r.outcome, Outcome::kCompleted) << r.message;
  EXPECT_THAT(guest_.storage_.removed, ElementsAre(src("a.qcow2"), src("b.qcow2")));
  EXPECT_TRUE(std::filesystem::exists(src("base.qcow2")));
  EXPECT_THAT(r.message, HasSubstr("backing files left in place"));
  EXPECT_THAT(r.message, HasSubstr(src("base.qcow2")));
}

}  // namespace
}  // namespace vmshift::migrate
