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

// The kinds, each declared in its own file.
const JobKind& live_storage_kind();  // live_storage.cc
const JobKind& live_kind();          // live_migration.cc
const JobKind& live_vsm_kind();      // live_migration.cc
const JobKind& qsm_kind();           // qsm.cc
const JobKind& quick_kind();         // quick.cc
const JobKind& network_kind();       // network.cc
const JobKind& copy_kind();          // copy_files.cc

const JobKind& job_kind(Kind kind) {
  switch (kind) {
    case Kind::kLiveStorage:
      return live_storage_kind();
    case Kind::kLive:
      return live_kind();
    case Kind::kLiveVsm:
      return live_vsm_kind();
    case Kind::kQsm:
      return qsm_kind();
    case Kind::kQuick:
      return quick_kind();
    case Kind::kNetwork:
      return network_kind();
    case Kind::kCopy:
      return copy_kind();
  }
  throw Error(ErrorCode::kInvalidArgument, fmt::format("no job kind {}", static_cast<int>(kind)));
}

const JobKind* find_job_kind(std::string_view name) {
  std::optional<Kind> k = find_kind(name);
  return k ? &job_kind(*k) : nullptr;
}

}  // namespace vmshift::migrate
