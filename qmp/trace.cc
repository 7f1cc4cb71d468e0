#include "qmp/trace.h"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace vmshift::qmp {
namespace {

// Members by unit, from QEMU's QAPI documentation (block-core.json,
// migration.json, job.json): sizes in bytes, speeds in bytes per second,
// times in milliseconds, throttles in percent.
constexpr std::array<std::pair<std::string_view, std::string_view>, 20> kUnits = {{
    {"speed", "B/s"},
    {"max-bandwidth", "B/s"},
    {"max-postcopy-bandwidth", "B/s"},
    {"avail-switchover-bandwidth", "B/s"},
    {"granularity", "B"},
    {"buf-size", "B"},
    {"xbzrle-cache-size", "B"},
    {"size", "B"},
    {"len", "B"},
    {"offset", "B"},
    {"virtual-size", "B"},
    {"actual-size", "B"},
    {"cluster-size", "B"},
    {"downtime-limit", "ms"},
    {"x-checkpoint-delay", "ms"},
    {"announce-initial", "ms"},
    {"cpu-throttle-initial", "%"},
    {"cpu-throttle-increment", "%"},
    {"max-cpu-throttle", "%"},
    {"throttle-trigger-threshold", "%"},
}};

// 16777216 -> "16 MiB", 1536 -> "1.5 KiB"; "" below 1 KiB.
std::string binary(std::int64_t n) {
  constexpr std::array<std::string_view, 5> kPrefixes = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (n < 1024 && n > -1024) return "";
  double v = static_cast<double>(n);
  std::size_t i = 0;
  v /= 1024;
  while (i + 1 < kPrefixes.size() && (v >= 1024 || v <= -1024)) {
    v /= 1024;
    ++i;
  }
  if (v == static_cast<double>(static_cast<std::int64_t>(v)))
    return fmt::format("{} {}", static_cast<std::int64_t>(v), kPrefixes[i]);
  return fmt::format("{:.1f} {}", v, kPrefixes[i]);
}

std::string scalar(std::string_view key, const Json& v) {
  if (v.is_string()) {
    std::string s = v.as_string();
    bool plain = !s.empty() && s.find_first_of(" \t\"=\\") == std::string::npos;
    return plain ? s : Json::string(s).dump();
  }
  if (!v.is_int()) return v.dump();
  std::int64_t n = v.as_int();
  std::string_view unit = unit_of(key);
  if (unit.empty()) return std::to_string(n);
  if (unit == "B" || unit == "B/s") {
    std::string b = binary(n);
    std::string per = unit == "B/s" ? "/s" : "";
    return b.empty() ? fmt::format("{} {}", n, unit) : fmt::format("{} {} ({}{})", n, unit, b, per);
  }
  return fmt::format("{} {}", n, unit);
}

void describe(const std::string& prefix, const Json& value, std::string& out) {
  for (const std::string& key : value.keys()) {
    Json v = value.get(key);
    std::string name = prefix.empty() ? key : prefix + "." + key;
    if (v.is_object() && v.size() > 0) {
      describe(name, v, out);
      continue;
    }
    if (!out.empty()) out += ' ';
    out += name + "=" + scalar(key, v);
  }
}

}  // namespace

std::string_view unit_of(std::string_view member) {
  for (const auto& [name, unit] : kUnits)
    if (name == member) return unit;
  return "";
}

std::string describe_members(const Json& members, std::size_t max_bytes) {
  if (!members.is_object()) return members.is_null() ? "" : members.dump();
  std::string out;
  describe("", members, out);
  if (out.size() > max_bytes)
    out = fmt::format("{}... ({} bytes)", out.substr(0, max_bytes), out.size());
  return out;
}

std::string describe_event(const Event& event) {
  std::string members = describe_members(event.data);
  return members.empty() ? event.name : event.name + " " + members;
}

}  // namespace vmshift::qmp
