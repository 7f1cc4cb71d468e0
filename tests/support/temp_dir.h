// A temporary directory removed (recursively) when the object is destroyed.
#pragma once

#include <string>

namespace vmshift::testing {

class TempDir {
 public:
  // Short paths under /tmp: UNIX socket paths must fit in 107 bytes.
  explicit TempDir(const std::string& prefix = "vmshift");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace vmshift::testing
