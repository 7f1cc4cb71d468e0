#include "base/format.h"

#include <fmt/format.h>

namespace vmshift {

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string human_rate(std::uint64_t bytes_per_s) {
  if (bytes_per_s == 0) return "unlimited";
  return human_bytes(bytes_per_s) + "/s";
}

std::string human_duration(std::chrono::nanoseconds d) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (us < 1000) return fmt::format("{} us", us);
  if (us < 1000 * 1000) return fmt::format("{} ms", us / 1000);
  return fmt::format("{:.1f} s", static_cast<double>(us) / 1e6);
}

}  // namespace vmshift
