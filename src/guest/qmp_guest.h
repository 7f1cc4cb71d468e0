// A bare QEMU guest (started with -qmp unix:PATH,server=on,wait=off),
// driven over QMP: blockdev-add the target, blockdev-mirror, wait for
// BLOCK_JOB_READY, block-job-complete, blockdev-del of the old nodes.
// Its files are on this machine.
#pragma once

#include <map>
#include <string>

#include "guest/guest.h"
#include "hosts/local_storage.h"
#include "qmp/client.h"

namespace vmshift::guest {

class QmpGuest : public Guest {
 public:
  explicit QmpGuest(const std::string& socket);

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

  // Names vmshift uses in QEMU for a disk's copy: the job, and the prefix
  // of the destination node (unique per copy: a disk can move again).
  static std::string job_id(const std::string& target);
  static std::string target_node_prefix(const std::string& target);

 private:
  struct Disk {
    std::string node;  // the node the device uses now
    DiskInfo info;
  };
  std::map<std::string, Disk> read_disks();
  Disk& disk(const std::string& target);
  std::optional<std::string> ended_with(const std::string& target);

  std::string socket_;
  qmp::Client qmp_;
  hosts::LocalStorage storage_;
  std::map<std::string, Disk> disks_;
  std::map<std::string, std::string> old_nodes_;  // target -> source node, for blockdev-del
  std::map<std::string, std::string> new_nodes_;  // target -> destination node
};

}  // namespace vmshift::guest
