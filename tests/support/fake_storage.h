// Storage fakes shared by the planner and live storage tests.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hosts/local_storage.h"
#include "hosts/storage.h"

namespace vmshift::testing {

// A host's files in memory: which exist, and the free space of each
// directory (a directory not listed does not exist: free_bytes throws
// kNotFound). Every file is its own: same_file compares paths.
class MemoryStorage : public hosts::Storage {
 public:
  std::set<std::string> files;
  std::map<std::string, std::uint64_t> dirs;

  bool exists(const std::string& path) override { return files.count(path) > 0; }
  std::optional<std::uint64_t> free_bytes(const std::string& dir) override;
  void remove(const std::string& path) override { files.erase(path); }
  bool same_file(const std::string& a, const std::string& b) override { return a == b; }
  std::optional<std::uint64_t> allocation(const std::string&) override { return 0; }
  void create_image(const hosts::NewImage& image) override { files.insert(image.path); }
  std::optional<hosts::FileIdentity> identity(const std::string& path) override;
};

// Real files (LocalStorage), but a free space the test chooses, and every
// removal recorded ("remove PATH" in events, the path in removed).
class RecordingStorage : public hosts::LocalStorage {
 public:
  explicit RecordingStorage(std::vector<std::string>& events) : events_(events) {}
  std::optional<std::uint64_t> free_bytes(const std::string& dir) override;
  void remove(const std::string& path) override;

  std::optional<std::uint64_t> free;  // nullopt: the real free space
  std::vector<std::string> removed;

 private:
  std::vector<std::string>& events_;
};

}  // namespace vmshift::testing
