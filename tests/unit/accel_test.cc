#include "hosts/accel.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "support/scoped_env.h"
#include "support/temp_dir.h"

namespace vmshift::hosts {
namespace {

class AccelTest : public ::testing::Test {
 protected:
  AccelTest() {
    probe_.kvm_device = dir_.file("kvm");
    probe_.cpuinfo = dir_.file("cpuinfo");
    probe_.override_env = "VMSHIFT_TEST_ACCEL_UNSET";
    write_cpuinfo("fpu vme de pse tsc msr pae mce cx8 apic sep vmx ssse3");
  }
  void make_device() {
    int fd = ::open(probe_.kvm_device.c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  void write_cpuinfo(const std::string& flags) {
    std::ofstream(probe_.cpuinfo) << "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: " << flags
                                  << "\n\nprocessor\t: 1\nflags\t\t: " << flags << "\n";
  }
  testing::TempDir dir_;
  AccelProbe probe_;
};

// Test that TCG is chosen when the KVM device does not exist.
TEST_F(AccelTest, TcgWithoutKvmDevice) {
  EXPECT_EQ(local_accelerator(probe_), Accelerator::kTcg);
  EXPECT_EQ(describe_local_accelerator(probe_),
            "tcg (" + probe_.kvm_device + ": No such file or directory)");
}

// Test that KVM is chosen when the device opens read-write and the CPU has
// vmx or svm, and not when the device is read-only.
TEST_F(AccelTest, KvmWhenDeviceOpensAndCpuVirtualizes) {
  make_device();
  EXPECT_EQ(local_accelerator(probe_), Accelerator::kKvm);
  EXPECT_EQ(describe_local_accelerator(probe_), "kvm (" + probe_.kvm_device + ", CPU flag vmx)");
  write_cpuinfo("fpu svm sse2");
  EXPECT_EQ(local_accelerator(probe_), Accelerator::kKvm);
  ASSERT_EQ(::chmod(probe_.kvm_device.c_str(), 0400), 0);
  if (::geteuid() != 0) {  // root opens anything
    EXPECT_EQ(local_accelerator(probe_), Accelerator::kTcg);
  }
}

// Test that a KVM device on a CPU without vmx or svm (a paravirtual KVM,
// on which ordinary guests hang at boot) means TCG, and that the reason says so.
TEST_F(AccelTest, TcgWhenTheCpuCannotVirtualize) {
  make_device();
  write_cpuinfo("fpu vme de pse tsc msr hypervisor vmxnet svmish");
  EXPECT_EQ(local_accelerator(probe_), Accelerator::kTcg);
  EXPECT_NE(describe_local_accelerator(probe_).find("no vmx or svm flag"), std::string::npos)
      << describe_local_accelerator(probe_);
}

// Test that $VMSHIFT_ACCEL overrides the probe both ways, and other values do not.
TEST_F(AccelTest, EnvironmentOverrides) {
  probe_.override_env = "VMSHIFT_TEST_ACCEL";
  testing::ScopedEnv tcg("VMSHIFT_TEST_ACCEL", "tcg");
  make_device();
  EXPECT_EQ(local_accelerator(probe_), Accelerator::kTcg);
  EXPECT_EQ(describe_local_accelerator(probe_), "tcg ($VMSHIFT_TEST_ACCEL=tcg)");
  {
    testing::ScopedEnv kvm("VMSHIFT_TEST_ACCEL", "kvm");
    ::unlink(probe_.kvm_device.c_str());
    EXPECT_EQ(local_accelerator(probe_), Accelerator::kKvm);
  }
  testing::ScopedEnv other("VMSHIFT_TEST_ACCEL", "hvf");
  EXPECT_EQ(local_accelerator(probe_), Accelerator::kTcg);  // no device: the probe decides
}

}  // namespace
}  // namespace vmshift::hosts
