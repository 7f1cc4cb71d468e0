// What --force may replace, through the real command line on two lab
// hosts: never a source of the move (also the same file of shared storage
// through the other host), never a file another defined VM uses. Every
// case is refused, and sha256 shows that no source and no other VM's file
// changed.
// Run through tests/lab/run-lab-test, which takes every lab down afterwards.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "support/host_pair_lab.h"
#include "support/temp_dir.h"

namespace vmshift::testing {
namespace {

using ::testing::HasSubstr;

const std::string kImages = "/var/lib/libvirt/images";
const std::string kShared = "/var/lib/libvirt/shared";
const std::string kOwn = kImages + "/fa-vda.qcow2";    // guest fa's disk, on host1-local
const std::string kOther = kShared + "/fa-vda.qcow2";  // VM fb's disk: the same file name

class ForceLab : public HostPairLab {
 protected:
  // One guest, fa, on host1's local storage, paused (so that its disk does
  // not change by itself); and a defined, shut-off VM fb on host1 whose
  // disk is a file of the same name on the shared storage.
  static void SetUpTestSuite() {
    start_lab("force");
    boot("fa", {"--disk-size", "128M", "--fill", "8"});
    lab_->virsh("host1", {"suspend", "fa"});
    RunResult made = lab_->in_host(
        "host1", {"sh", "-c",
                  fmt::format("qemu-img create -q -f qcow2 {0} 64M && "
                              "qemu-io -f qcow2 -c 'write -P 0x5a 0 4M' {0} >/dev/null",
                              kOther)});
    ASSERT_TRUE(made.status.success()) << made.err;
    std::string xml = lab_->virsh("host1", {"dumpxml", "--inactive", "fa"});
    auto swap = [&](const std::string& from, const std::string& to) {
      auto at = xml.find(from);
      ASSERT_NE(at, std::string::npos) << from;
      xml.replace(at, from.size(), to);
    };
    swap("<name>fa</name>", "<name>fb</name>");
    swap(kOwn, kOther);
    auto uuid = xml.find("<uuid>");
    if (uuid != std::string::npos) xml.erase(uuid, xml.find("</uuid>") + 7 - uuid);
    TempDir tmp("force");
    std::ofstream(tmp.file("fb.xml")) << xml;
    lab_->virsh("host1", {"define", tmp.file("fb.xml")});
  }
  static void TearDownTestSuite() {
    if (lab_ != nullptr) {
      try {
        destroy("host1", "fa");
        lab_->virsh("host1", {"undefine", "fb"});
      } catch (const std::exception& e) {
        ADD_FAILURE() << "cleaning up the lab: " << e.what();
      }
    }
    stop_lab();
  }

  static std::string sha256(const std::string& host, const std::string& path) {
    RunResult r = lab_->in_host(host, {"sha256sum", path});
    EXPECT_TRUE(r.status.success()) << host << ":" << path << " " << r.err;
    return r.out.substr(0, 64);
  }
  // Runs vmshift; expects a refusal (non-zero exit) that says `why`, and
  // both files unchanged, and fa still paused on host1 on its own disk.
  void expect_refused(const Argv& args, const std::string& why) {
    std::string own = sha256("host1", kOwn), other = sha256("host1", kOther);
    RunResult r = cli_->run(args);
    EXPECT_NE(r.status.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out + r.err, HasSubstr(why));
    EXPECT_EQ(sha256("host1", kOwn), own) << "fa's disk changed";
    EXPECT_EQ(sha256("host1", kOther), other) << "fb's disk changed";
    EXPECT_EQ(sha256("host2", kOther), other) << "fb's disk changed, seen from host2";
    EXPECT_EQ(domstate(*lab_, "host1", "fa"), "paused");
    EXPECT_EQ(live_disks(*lab_, "host1", "fa").at("vda"), kOwn);
    EXPECT_FALSE(defined(*lab_, "host2", "fa"));
  }
};

// Test that `vmshift copy` of a shared file onto the same file through the
// other host is refused with --force.
TEST_F(ForceLab, CopyOfASharedFileOntoItselfThroughTheOtherHost) {
  expect_refused({"copy", "host1:" + kOther, "host2:" + kOther, "--force"}, "is the source itself");
}

// Test that a QSM with --force onto the location the disk already lives in
// is refused: the destination would be the disk's own file.
TEST_F(ForceLab, QsmOntoTheLocationTheDiskLivesIn) {
  expect_refused(
      {"migrate", "fa", "--to", "host1", "--type", "qsm", "--storage", "host1-local", "--force"},
      "is the disk's own file");
}

// Test that a live VSM with --force onto shared storage where another VM's
// disk has the destination's name is refused, naming that VM.
TEST_F(ForceLab, LiveVsmOntoAnotherVmsDiskOnSharedStorage) {
  expect_refused(
      {"migrate", "fa", "--to", "host2", "--type", "live-vsm", "--storage", "shared", "--force"},
      "VM 'fb' on host 'host1' uses it");
}

// Test that move-storage --force into a directory where another VM's disk
// has the same file name is refused, naming that VM.
TEST_F(ForceLab, MoveStorageOntoAnotherVmsDisk) {
  expect_refused({"move-storage", "fa", "--to", kShared, "--force"},
                 "VM 'fb' on host 'host1' uses it");
}

}  // namespace
}  // namespace vmshift::testing
