// How vmshift writes quantities for people: in plans, results, progress
// and the debug log.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace vmshift {

// "0 B", "1023 B", "1.5 KiB", "10.0 GiB" (binary units).
std::string human_bytes(std::uint64_t bytes);
// A rate in bytes per second: "12.0 MiB/s"; 0 is "unlimited".
std::string human_rate(std::uint64_t bytes_per_s);
// A duration: "850 ms", "1.2 s".
std::string human_duration(std::chrono::nanoseconds d);

}  // namespace vmshift
