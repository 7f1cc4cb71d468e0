#include "hosts/accel.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"

namespace vmshift::hosts {
namespace {

int open_error(const std::string& kvm_device) {
  UniqueFd fd(::open(kvm_device.c_str(), O_RDWR | O_CLOEXEC));
  return fd ? 0 : errno;
}

}  // namespace

std::string_view to_string(Accelerator accel) noexcept {
  return accel == Accelerator::kKvm ? "kvm" : "tcg";
}

Accelerator local_accelerator(const std::string& kvm_device) {
  return open_error(kvm_device) == 0 ? Accelerator::kKvm : Accelerator::kTcg;
}

std::string describe_local_accelerator(const std::string& kvm_device) {
  int err = open_error(kvm_device);
  if (err == 0) return fmt::format("kvm ({})", kvm_device);
  return fmt::format("tcg ({}: {})", kvm_device, std::strerror(err));
}

}  // namespace vmshift::hosts
