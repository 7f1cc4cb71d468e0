// A running VM, whoever manages it: libvirt (LibvirtGuest) or nobody but
// its own QEMU (QmpGuest). The migration types drive guests only through
// this interface, so each works for both.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/deadline.h"

namespace vmshift::guest {

struct DiskInfo {
  std::string target;                // the guest's name for the disk: "vda", or a QEMU device id
  std::string path;                  // the image file of the top layer
  std::string format;                // "qcow2", "raw", ...
  std::uint64_t capacity = 0;        // virtual size, bytes
  std::uint64_t allocation = 0;      // bytes allocated on the host for the top layer
  std::vector<std::string> backing;  // backing chain below the top layer, nearest first
  std::string backing_format;        // format of backing.front(), if any
};

// An empty image for a copy to fill.
struct NewImage {
  std::string path;
  std::string format;  // "qcow2" or "raw"
  std::uint64_t capacity = 0;
  std::string backing;  // qcow2 only: a backing file the copy's top layer sits on
  std::string backing_format;
};

struct CopyRequest {
  std::string target;
  std::string dest;             // destination file; the guest's host creates it
  std::string format;           // of the destination
  bool shallow = false;         // copy the top layer only; the backing chain stays
  std::uint64_t bandwidth = 0;  // bytes per second; 0 = unlimited
  bool sync_writes = false;     // write-blocking: guest writes go to both sides at once
};

struct CopyStatus {
  bool active = false;  // a copy job exists for the disk
  bool ready = false;   // source and destination are in sync; pivot allowed
  std::uint64_t done = 0;
  std::uint64_t total = 0;
  std::optional<std::string> error;  // the job ended without a pivot, and why
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

class Guest {
 public:
  virtual ~Guest() = default;

  virtual std::string describe() const = 0;  // "VM 'g1' on host 'host1'"
  virtual std::string state() = 0;           // "running", "paused", "shut off", ...
  virtual std::vector<DiskInfo> disks() = 0;
  virtual Storage& storage() = 0;

  virtual void start_copy(const CopyRequest& request) = 0;
  virtual CopyStatus copy_status(const std::string& target) = 0;
  virtual void set_copy_bandwidth(const std::string& target, std::uint64_t bytes_per_second) = 0;
  // Switches the disk to its destination; returns how long the switch took.
  virtual std::chrono::milliseconds pivot(const std::string& target, Deadline deadline) = 0;
  // Ends a copy without switching: the disk stays on its source. No-op if
  // there is no copy. Does not delete the destination file.
  virtual void abort_copy(const std::string& target, Deadline deadline) = 0;
  // The file the running guest uses for the disk now.
  virtual std::string active_path(const std::string& target) = 0;
  // Makes a restart use these paths (libvirt: the persistent definition).
  // Returns a note for the user, e.g. what they must change themselves.
  virtual std::string persist_paths(const std::map<std::string, std::string>& paths) = 0;
};

}  // namespace vmshift::guest
