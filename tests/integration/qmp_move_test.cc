// vmshift move-storage --qmp: live storage migration of a bare QEMU guest
// (no libvirt) through the real command line, while the test guest writes
// its ledger; vmshift-verify checks every acknowledged write afterwards.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ledger/ledger.h"
#include "qmp/commands.h"
#include "support/lab.h"
#include "support/qemu_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace vmshift::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

long long acks(const std::string& console, std::uint32_t disk) {
  std::ifstream in(console);
  ledger::Console c = ledger::parse_console(in);
  return c.acked.count(disk) ? static_cast<long long>(c.acked.at(disk)) : 0;
}

class QmpMove : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.file("src"));
    std::filesystem::create_directories(dir_.file("dst"));
    std::ofstream(dir_.file("config.toml"))
        << "[[host]]\nname = \"local\"\nuri = \"qemu:///system\"\n";
  }

  // Boots the test guest on the given images (device ids vd0, vd1, ...) with
  // a second QMP monitor for vmshift at dir/vmshift.sock.
  void boot(const std::vector<std::string>& images) {
    QemuProcess::Options o = test_guest_options(console(), images);
    o.extra_args.insert(o.extra_args.end(),
                        {"-chardev", "socket,id=vmshift,path=" + socket() + ",server=on,wait=off",
                         "-mon", "chardev=vmshift,mode=control"});
    qemu_ = std::make_unique<QemuProcess>(dir_, o);
  }

  void create(const std::string& path, const std::string& size, const std::string& backing = "") {
    Argv a = {require_program("qemu-img", "qemu-utils"), "create", "-q", "-f", "qcow2"};
    if (!backing.empty()) a.insert(a.end(), {"-b", backing, "-F", "qcow2"});
    a.insert(a.end(), {path, size});
    run_tool(a);
  }

  RunResult vmshift(const Argv& args) {
    Argv argv = {build_root() + "/src/cli/vmshift"};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions o;
    o.pipe_stdout = true;
    o.pipe_stderr = true;
    o.kill_with_parent = true;
    o.extra_env = {"VMSHIFT_CONFIG=" + dir_.file("config.toml"),
                   "VMSHIFT_STATE_DIR=" + dir_.file("state")};
    return run(argv, Deadline::after(300s), o);
  }

  void expect_writes_continue(std::uint32_t disks) {
    for (std::uint32_t d = 0; d < disks; ++d) {
      long long seen = acks(console(), d);
      EXPECT_TRUE(wait_until(60s, [&] { return acks(console(), d) > seen + 5; }))
          << "the guest stopped acknowledging writes on disk " << d << " after " << seen;
    }
  }

  // The image file each device uses now, from query-block.
  std::map<std::string, std::string> files() {
    std::map<std::string, std::string> out;
    for (const auto& b : qmp::query_block(qemu_->qmp(), Deadline::after(30s)))
      if (b.inserted && !b.removable) out[b.qdev] = b.inserted->file;
    return out;
  }

  // Stops the guest, ends QEMU and checks every acknowledged write on the images.
  void expect_verified(const std::vector<std::string>& images) {
    qmp::stop(qemu_->qmp(), Deadline::after(30s));
    qemu_->quit(Deadline::after(30s));
    Argv argv = {build_root() + "/src/ledger/vmshift-verify", "--console", console()};
    for (std::size_t i = 0; i < images.size(); ++i)
      argv.insert(argv.end(),
                  {"--image", images[i], "--format", "qcow2", "--disk", std::to_string(i)});
    RunResult r = run(argv, Deadline::after(120s));
    EXPECT_EQ(r.status.code, 0) << r.out << r.err;
    for (std::size_t i = 0; i < images.size(); ++i)
      EXPECT_THAT(r.out, ::testing::ContainsRegex(fmt::format(
                             "disk {} .*[1-9][0-9]* acknowledged writes, 0 lost writes", i)))
          << r.out;
  }

  Json image_info(const std::string& path) {
    return Json::parse(run_tool({require_program("qemu-img", "qemu-utils"), "info", "--force-share",
                                 "--output=json", path})
                           .out);
  }

  std::string console() const { return dir_.file("console.log"); }
  std::string socket() const { return dir_.file("vmshift.sock"); }

  TempDir dir_{"vmsq"};
  std::unique_ptr<QemuProcess> qemu_;
};

// Test that both disks of a writing bare QEMU guest move to another
// directory over QMP: QEMU uses the new files, the old ones are deleted, the
// job records the pause, and no acknowledged write is lost.
TEST_F(QmpMove, MovesTwoDisksOfAWritingGuest) {
  std::vector<std::string> src = {dir_.file("src/a.qcow2"), dir_.file("src/b.qcow2")};
  std::vector<std::string> dst = {dir_.file("dst/a.qcow2"), dir_.file("dst/b.qcow2")};
  create(src[0], "64M");
  create(src[1], "32M");
  boot(src);
  expect_writes_continue(2);

  RunResult r = vmshift({"move-storage", "--qmp", socket(), "--to", dir_.file("dst")});
  ASSERT_EQ(r.status.code, 0) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("moving 2 disks of the QEMU at"));
  auto now = files();
  EXPECT_EQ(now.at("/machine/peripheral/vd0/virtio-backend"), dst[0]);
  EXPECT_EQ(now.at("/machine/peripheral/vd1/virtio-backend"), dst[1]);
  EXPECT_FALSE(std::filesystem::exists(src[0]));
  EXPECT_FALSE(std::filesystem::exists(src[1]));
  EXPECT_EQ(qmp::query_status(qemu_->qmp(), Deadline::after(30s)).status, "running");

  RunResult j = vmshift({"jobs", "show", "1", "--json"});
  Json job = Json::parse(j.out);
  EXPECT_EQ(job.get_string("state"), "completed") << j.out;
  EXPECT_TRUE(job.has("pause_ms")) << j.out;

  expect_writes_continue(2);
  expect_verified(dst);
}

// Test that --shallow keeps the backing file where it is (the new top layer
// points at it) and that a plain move then copies the whole chain into a
// standalone image; the base is never deleted and no write is lost.
TEST_F(QmpMove, ShallowKeepsTheBackingChainAndTheDefaultFlattensIt) {
  std::string base = dir_.file("src/base.qcow2");
  std::string top = dir_.file("src/top.qcow2");
  create(base, "64M");
  create(top, "64M", base);
  boot({top});
  expect_writes_continue(1);

  std::filesystem::create_directories(dir_.file("dst/shallow"));
  RunResult r =
      vmshift({"move-storage", "--qmp", socket(), "--to", dir_.file("dst/shallow"), "--shallow"});
  ASSERT_EQ(r.status.code, 0) << r.out << r.err;
  std::string shallow = dir_.file("dst/shallow/top.qcow2");
  EXPECT_EQ(files().begin()->second, shallow);
  EXPECT_EQ(image_info(shallow).get_string("backing-filename"), base);
  EXPECT_FALSE(std::filesystem::exists(top));
  EXPECT_TRUE(std::filesystem::exists(base)) << "the backing file was deleted";
  expect_writes_continue(1);

  std::filesystem::create_directories(dir_.file("dst/flat"));
  r = vmshift({"move-storage", "--qmp", socket(), "--to", dir_.file("dst/flat")});
  ASSERT_EQ(r.status.code, 0) << r.out << r.err;
  std::string flat = dir_.file("dst/flat/top.qcow2");
  EXPECT_EQ(files().begin()->second, flat);
  EXPECT_FALSE(image_info(flat).has("backing-filename")) << image_info(flat).dump();
  EXPECT_FALSE(std::filesystem::exists(shallow));
  EXPECT_TRUE(std::filesystem::exists(base));
  expect_writes_continue(1);
  expect_verified({flat});
}

// Test that a destination that is the guest's own image, reached through a
// symbolic link, is refused before anything changes, even with --force.
TEST_F(QmpMove, RefusesTheGuestsOwnFileThroughALink) {
  std::string src = dir_.file("src/a.qcow2");
  create(src, "64M");
  std::filesystem::create_symlink(src, dir_.file("dst/a.qcow2"));
  boot({src});
  expect_writes_continue(1);
  RunResult r = vmshift({"move-storage", "--qmp", socket(), "--to", dir_.file("dst"), "--force"});
  EXPECT_EQ(r.status.code, 1) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("is the file '" + src + "' the VM already uses"));
  EXPECT_THAT(r.err, HasSubstr("Nothing was changed"));
  EXPECT_EQ(files().begin()->second, src);
  expect_writes_continue(1);
  expect_verified({src});
}

}  // namespace
}  // namespace vmshift::testing
