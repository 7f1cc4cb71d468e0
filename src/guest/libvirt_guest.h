// A VM managed by libvirt, driven through libvirt's API only (libvirt
// itself talks QMP to its QEMU; vmshift never does behind its back).
#pragma once

#include <memory>
#include <string>

#include "guest/guest.h"
#include "hosts/libvirt.h"
#include "hosts/libvirt_storage.h"

namespace vmshift::guest {

class LibvirtGuest : public Guest {
 public:
  // Throws Error(kNotFound) if the host has no such VM.
  LibvirtGuest(hosts::Connection conn, const std::string& name);

  std::string describe() const override;
  std::string state() override;
  std::vector<DiskInfo> disks() override;
  hosts::Storage& storage() override { return storage_; }

  void start_copy(const CopyRequest& request) override;
  CopyStatus copy_status(const std::string& target) override;
  void set_copy_bandwidth(const std::string& target, std::uint64_t bytes_per_second) override;
  std::chrono::milliseconds pivot(const std::string& target, Deadline deadline) override;
  void abort_copy(const std::string& target, Deadline deadline) override;
  std::string active_path(const std::string& target) override;
  std::string persist_paths(const std::map<std::string, std::string>& paths) override;

 private:
  hosts::Connection conn_;
  std::string name_;
  hosts::Domain dom_;
  hosts::LibvirtStorage storage_;
};

}  // namespace vmshift::guest
