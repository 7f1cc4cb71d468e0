// Which accelerator QEMU should use on this host.
#pragma once

#include <string>
#include <string_view>

namespace vmshift::hosts {

enum class Accelerator { kKvm, kTcg };

std::string_view to_string(Accelerator accel) noexcept;

// KVM when the KVM device can be opened for reading and writing (so QEMU
// started by this user can use it), otherwise TCG, QEMU's software emulation.
Accelerator local_accelerator(const std::string& kvm_device = "/dev/kvm");

// Why local_accelerator() chose what it chose, for messages:
// "kvm (/dev/kvm)" or "tcg (/dev/kvm: No such file or directory)".
std::string describe_local_accelerator(const std::string& kvm_device = "/dev/kvm");

}  // namespace vmshift::hosts
