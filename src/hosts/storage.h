// File operations on the host where a VM's files are: the interface the
// migration types use for every file they check, create or delete.
// LocalStorage (files this machine sees) and LibvirtStorage (a host's
// files through its storage pools) implement it; unit tests use fakes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace vmshift::hosts {

// An empty image for a copy to fill.
struct NewImage {
  std::string path;
  std::string format;  // "qcow2" or "raw"
  std::uint64_t capacity = 0;
  std::string backing;  // qcow2 only: a backing file the copy's top layer sits on
  std::string backing_format;
};

// What a storage can tell about a file that does not change when the file
// is written: a job records it when it creates a file, and deletes the file
// later only if the file at that path still has it (a file that replaced
// it, made by another job or a user, is left alone).
//   LocalStorage: the device, the inode and the birth time (statx, where
//   the file system keeps it) -- a replaced file always differs.
//   LibvirtStorage: libvirt shows no inode; only the volume's key (for a
//   dir pool: the file's path) and the birth time where the host's libvirt
//   reports one (not on Linux): a file replaced under the same name is not
//   told apart there. Weaker, and said so in docs/storage-migration.md.
struct FileIdentity {
  std::string basis;  // "inode" or "libvirt-volume"
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::int64_t birth_ns = 0;  // 0: not known
  std::string key;            // libvirt's volume key
  bool operator==(const FileIdentity&) const = default;
  std::string describe() const;
};

// File operations on the host where the guest's files are.
class Storage {
 public:
  virtual ~Storage() = default;
  virtual bool exists(const std::string& path) = 0;
  // Free bytes for new data in a directory; nullopt if unknown.
  virtual std::optional<std::uint64_t> free_bytes(const std::string& dir) = 0;
  // Removes a file; no error if it is already gone.
  virtual void remove(const std::string& path) = 0;
  // Whether two existing paths name the same file: the same path, a link to
  // it (symbolic or hard), or the same file through another name of its
  // directory (a symlinked or bind-mounted directory). False if either does
  // not exist.
  virtual bool same_file(const std::string& a, const std::string& b) = 0;
  // Allocated bytes of a file.
  virtual std::optional<std::uint64_t> allocation(const std::string& path) = 0;
  // Creates an empty, sparse image for a copy to fill. Throws
  // Error(kAlreadyExists) if the file exists.
  virtual void create_image(const NewImage& image) = 0;
  // What tells this file from another at the same path later; nullopt if
  // there is no file.
  virtual std::optional<FileIdentity> identity(const std::string& path) = 0;
  // Removes the file only if it still has this identity. True when it was
  // removed (or was gone already); false, and nothing removed, when another
  // file is there now.
  bool remove_if_same(const std::string& path, const FileIdentity& id) {
    std::optional<FileIdentity> now = identity(path);
    if (!now) return true;
    if (!(*now == id)) return false;
    remove(path);
    return true;
  }
};

}  // namespace vmshift::hosts
