#include "support/fake_storage.h"

#include "base/error.h"

namespace vmshift::testing {

std::optional<std::uint64_t> MemoryStorage::free_bytes(const std::string& dir) {
  auto it = dirs.find(dir);
  if (it == dirs.end()) throw Error(ErrorCode::kNotFound, "cannot reach directory '" + dir + "'");
  return it->second;
}

std::optional<hosts::FileIdentity> MemoryStorage::identity(const std::string& path) {
  if (!exists(path)) return std::nullopt;
  return hosts::FileIdentity{.basis = "test", .key = path};
}

std::optional<std::uint64_t> RecordingStorage::free_bytes(const std::string& dir) {
  auto real = LocalStorage::free_bytes(dir);  // throws for a missing directory
  return free ? free : real;
}

void RecordingStorage::remove(const std::string& path) {
  events_.push_back("remove " + path);
  removed.push_back(path);
  LocalStorage::remove(path);
}

}  // namespace vmshift::testing
