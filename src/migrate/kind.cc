#include "migrate/kind.h"

#include <fmt/format.h>

#include <array>
#include <string>
#include <utility>

#include "base/error.h"

namespace vmshift::migrate {
namespace {

constexpr std::array<std::pair<Kind, std::string_view>, 7> kNames = {{
    {Kind::kLiveStorage, "live-storage"},
    {Kind::kLive, "live"},
    {Kind::kLiveVsm, "live-vsm"},
    {Kind::kQsm, "qsm"},
    {Kind::kQuick, "quick"},
    {Kind::kNetwork, "network"},
    {Kind::kCopy, "copy"},
}};

}  // namespace

const std::vector<Kind>& all_kinds() {
  static const std::vector<Kind> kinds = [] {
    std::vector<Kind> v;
    for (const auto& [k, n] : kNames) v.push_back(k);
    return v;
  }();
  return kinds;
}

std::string_view kind_name(Kind kind) {
  for (const auto& [k, n] : kNames)
    if (k == kind) return n;
  return "unknown";
}

std::optional<Kind> find_kind(std::string_view name) {
  for (const auto& [k, n] : kNames)
    if (n == name) return k;
  return std::nullopt;
}

Kind parse_kind(std::string_view name) {
  if (auto k = find_kind(name)) return *k;
  std::string known;
  for (const auto& [k, n] : kNames) known += fmt::format("{}{}", known.empty() ? "" : ", ", n);
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("unknown job type '{}' (known: {})", name, known));
}

}  // namespace vmshift::migrate
