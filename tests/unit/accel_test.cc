#include "hosts/accel.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "support/temp_dir.h"

namespace vmshift::hosts {
namespace {

// Test that TCG is chosen when the KVM device does not exist.
TEST(Accel, TcgWithoutKvmDevice) {
  EXPECT_EQ(local_accelerator("/nonexistent/kvm"), Accelerator::kTcg);
  EXPECT_EQ(describe_local_accelerator("/nonexistent/kvm"),
            "tcg (/nonexistent/kvm: No such file or directory)");
}

// Test that KVM is chosen when the device opens read-write, and not when it is read-only.
TEST(Accel, KvmWhenDeviceOpensReadWrite) {
  testing::TempDir dir;
  std::string dev = dir.file("kvm");
  int fd = ::open(dev.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(local_accelerator(dev), Accelerator::kKvm);
  ASSERT_EQ(::chmod(dev.c_str(), 0400), 0);
  if (::geteuid() != 0) {  // root opens anything
    EXPECT_EQ(local_accelerator(dev), Accelerator::kTcg);
  }
}

// Test that the choice on this machine matches whether /dev/kvm is usable.
TEST(Accel, MatchesThisMachine) {
  bool usable = ::access("/dev/kvm", R_OK | W_OK) == 0;
  EXPECT_EQ(local_accelerator(), usable ? Accelerator::kKvm : Accelerator::kTcg);
}

}  // namespace
}  // namespace vmshift::hosts
