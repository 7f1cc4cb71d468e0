// Which accelerator QEMU should use on this host.
#pragma once

#include <string>
#include <string_view>

namespace vmshift::hosts {

enum class Accelerator { kKvm, kTcg };

std::string_view to_string(Accelerator accel) noexcept;

// Where local_accelerator() looks; tests point these at files of their own.
struct AccelProbe {
  std::string kvm_device = "/dev/kvm";
  std::string cpuinfo = "/proc/cpuinfo";
  // Overrides the probe when set to "kvm" or "tcg" (the environment
  // variable VMSHIFT_ACCEL by default).
  std::string override_env = "VMSHIFT_ACCEL";
};

// KVM when the KVM device can be opened for reading and writing (so QEMU
// started by this user can use it) and the CPU has hardware virtualization
// (the vmx or svm flag): a KVM device without it is a paravirtual KVM
// (such as kvm-pvm in some sandboxes) that opens, but on which an ordinary
// guest kernel hangs at boot. Otherwise TCG, QEMU's software emulation.
// $VMSHIFT_ACCEL=kvm|tcg decides instead of the probe.
Accelerator local_accelerator(const AccelProbe& probe = {});

// Why local_accelerator() chose what it chose, for messages, e.g.
// "kvm (/dev/kvm, CPU flag vmx)", "tcg (/dev/kvm: No such file or directory)".
std::string describe_local_accelerator(const AccelProbe& probe = {});

}  // namespace vmshift::hosts
