// Files vmshift can see itself (a bare QEMU guest on this machine).
#pragma once

#include "hosts/storage.h"

namespace vmshift::hosts {

class LocalStorage : public Storage {
 public:
  bool exists(const std::string& path) override;
  std::optional<std::uint64_t> free_bytes(const std::string& dir) override;
  void remove(const std::string& path) override;
  // "device:inode" of the file the path resolves to.
  bool same_file(const std::string& a, const std::string& b) override;
  std::optional<std::uint64_t> allocation(const std::string& path) override;
  void create_image(const NewImage& image) override;
  std::optional<FileIdentity> identity(const std::string& path) override;
};

// The identity of the file at a path of this machine (not following a
// final symbolic link: the link is what sits at the path): device, inode,
// and birth time where the file system keeps it. nullopt if there is none.
std::optional<FileIdentity> local_identity(const std::string& path);

}  // namespace vmshift::hosts
