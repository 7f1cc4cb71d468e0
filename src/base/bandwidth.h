// Bandwidth units. Below the CLI every rate is in bytes per second
// (0 = unlimited), as libvirt's monitor keeps it; the CLI takes MiB/s, as
// virsh does, and converts once, here.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/error.h"

namespace vmshift {

inline constexpr std::uint64_t kBytesPerMiB = 1024 * 1024;

// A rate given in MiB/s (fractions allowed: 0.5 is 512 KiB/s) in bytes per
// second, to the nearest byte. Throws Error(kInvalidArgument) naming the
// option for a negative, non-finite or too large value, and for a positive
// value under 1 byte/s (which would read as "unlimited").
inline std::uint64_t bytes_per_s_from_mib(double mib_per_s, std::string_view option) {
  if (!std::isfinite(mib_per_s) || mib_per_s < 0)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("{} cannot be negative", option));
  // Beyond 2^53 bytes/s a double no longer holds every whole number.
  if (mib_per_s > static_cast<double>(1ull << 53) / static_cast<double>(kBytesPerMiB))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} {}: too large a rate in MiB/s", option, mib_per_s));
  double bytes = std::round(mib_per_s * static_cast<double>(kBytesPerMiB));
  if (mib_per_s > 0 && bytes < 1)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} {}: less than 1 byte/s (0 means unlimited)", option, mib_per_s));
  return static_cast<std::uint64_t>(bytes);
}

// A rate in bytes per second as whole MiB/s, for the APIs that take nothing
// finer (libvirt's migration bandwidth); nullopt if it is not a whole number
// of MiB/s.
inline std::optional<std::uint64_t> whole_mib_per_s(std::uint64_t bytes_per_s) {
  if (bytes_per_s % kBytesPerMiB != 0) return std::nullopt;
  return bytes_per_s / kBytesPerMiB;
}

}  // namespace vmshift
