#include "hosts/accel.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/unique_fd.h"

namespace vmshift::hosts {
namespace {

struct Choice {
  Accelerator accel;
  std::string why;
};

int open_error(const std::string& kvm_device) {
  UniqueFd fd(::open(kvm_device.c_str(), O_RDWR | O_CLOEXEC));
  return fd ? 0 : errno;
}

// "vmx" or "svm" if a "flags" line of cpuinfo lists it; "" otherwise.
std::string virtualization_flag(const std::string& cpuinfo) {
  std::ifstream in(cpuinfo);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("flags")) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream words(line.substr(colon + 1));
    std::string w;
    while (words >> w)
      if (w == "vmx" || w == "svm") return w;
  }
  return "";
}

Choice choose(const AccelProbe& p) {
  if (const char* forced = std::getenv(p.override_env.c_str()); forced != nullptr) {
    std::string f = forced;
    if (f == "kvm") return {Accelerator::kKvm, fmt::format("${}=kvm", p.override_env)};
    if (f == "tcg") return {Accelerator::kTcg, fmt::format("${}=tcg", p.override_env)};
  }
  if (int err = open_error(p.kvm_device); err != 0)
    return {Accelerator::kTcg, fmt::format("{}: {}", p.kvm_device, std::strerror(err))};
  std::string flag = virtualization_flag(p.cpuinfo);
  if (flag.empty())
    return {Accelerator::kTcg,
            fmt::format("{} opens, but the CPU has no vmx or svm flag in {}: a paravirtual KVM "
                        "that cannot boot ordinary guests",
                        p.kvm_device, p.cpuinfo)};
  return {Accelerator::kKvm, fmt::format("{}, CPU flag {}", p.kvm_device, flag)};
}

}  // namespace

std::string_view to_string(Accelerator accel) noexcept {
  return accel == Accelerator::kKvm ? "kvm" : "tcg";
}

Accelerator local_accelerator(const AccelProbe& probe) { return choose(probe).accel; }

std::string describe_local_accelerator(const AccelProbe& probe) {
  Choice c = choose(probe);
  return fmt::format("{} ({})", to_string(c.accel), c.why);
}

}  // namespace vmshift::hosts
