// The block job of one disk of a libvirt domain (a copy or an active
// commit): its figures, the switch to its destination, its cancellation.
// Every call goes through QEMU's monitor, which stops answering when QEMU's
// main loop blocks on storage that hangs: each is bounded by a deadline
// (hosts::call_within). LibvirtGuest's copies and LibvirtHost's commits
// both run on this.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "base/deadline.h"
#include "hosts/libvirt.h"

namespace vmshift::hosts {

struct BlockJobStatus {
  bool active = false;  // the disk has a block job
  bool ready = false;   // source and destination are in sync: a pivot may follow
  std::uint64_t done = 0;
  std::uint64_t total = 0;
};

// `vm` names the VM in messages, e.g. "VM 'g1' on host 'host1'".
BlockJobStatus block_job_status(virDomainPtr dom, const std::string& vm, const std::string& target,
                                Deadline deadline);
// Switches the disk to the job's destination (virDomainBlockJobAbort with
// PIVOT, asynchronous) and waits until the job is gone and the disk runs
// on another file; returns how long the switch took.
std::chrono::milliseconds pivot_block_job(virDomainPtr dom, const std::string& vm,
                                          const std::string& target, Deadline deadline);
// Changes the speed of the disk's job, in bytes per second (0: unlimited).
void set_block_job_speed(virDomainPtr dom, const std::string& target, std::uint64_t bytes_per_s,
                         Deadline deadline);
// Ends the disk's job without a switch; no-op if it has none.
void abort_block_job(virDomainPtr dom, const std::string& vm, const std::string& target,
                     Deadline deadline);
// The file the running domain uses for the disk now.
std::string disk_source(virDomainPtr dom, const std::string& target);

}  // namespace vmshift::hosts
