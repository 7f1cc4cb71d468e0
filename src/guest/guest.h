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
#include "hosts/storage.h"

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

class Guest {
 public:
  virtual ~Guest() = default;

  virtual std::string describe() const = 0;  // "VM 'g1' on host 'host1'"
  virtual std::string state() = 0;           // "running", "paused", "shut off", ...
  virtual std::vector<DiskInfo> disks() = 0;
  virtual hosts::Storage& storage() = 0;

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
