// Files vmshift can see itself (a bare QEMU guest on this machine).
#pragma once

#include "guest/guest.h"

namespace vmshift::guest {

class LocalStorage : public Storage {
 public:
  bool exists(const std::string& path) override;
  std::optional<std::uint64_t> free_bytes(const std::string& dir) override;
  void remove(const std::string& path) override;
  // "device:inode" of the file the path resolves to.
  bool same_file(const std::string& a, const std::string& b) override;
  std::optional<std::uint64_t> allocation(const std::string& path) override;
  void create_image(const NewImage& image) override;
};

}  // namespace vmshift::guest
