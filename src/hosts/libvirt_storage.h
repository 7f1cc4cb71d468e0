// Files on a libvirt host, through its storage pools: works when vmshift
// cannot see the host's files at all. A directory no active pool covers
// gets a transient dir pool for as long as this object lives.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "hosts/libvirt.h"
#include "hosts/storage.h"

namespace vmshift::hosts {

class LibvirtStorage : public Storage {
 public:
  explicit LibvirtStorage(Connection conn);
  ~LibvirtStorage() override;
  LibvirtStorage(const LibvirtStorage&) = delete;
  LibvirtStorage& operator=(const LibvirtStorage&) = delete;

  bool exists(const std::string& path) override;
  std::optional<std::uint64_t> free_bytes(const std::string& dir) override;
  void remove(const std::string& path) override;
  bool same_file(const std::string& a, const std::string& b) override;
  std::optional<std::uint64_t> allocation(const std::string& path) override;
  void create_image(const NewImage& image) override;
  // The volume's key and the birth time if libvirt reports one (see
  // FileIdentity: weaker than an inode).
  std::optional<FileIdentity> identity(const std::string& path) override;

  // The volume of a file (its directory gets a transient pool if no pool
  // covers it); null if there is no such file.
  Volume volume_at(const std::string& path) { return volume(path); }
  const Connection& connection() const { return conn_; }

 private:
  virStoragePoolPtr pool_for(const std::string& dir);
  Volume volume(const std::string& path);  // null if none
  bool same_dir(const std::string& a, const std::string& b);

  Connection conn_;
  std::map<std::string, Pool> pools_;  // directory -> pool
  std::vector<Pool> transient_;        // pools this object created
};

std::string dirname_of(const std::string& path);
std::string basename_of(const std::string& path);

}  // namespace vmshift::hosts
