// Gathers what the planner needs from the two hosts (libvirt only: works
// from a machine that sees neither host's files), then plans.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/job_store.h"
#include "core/planner.h"
#include "hosts/inventory.h"
#include "hosts/libvirt.h"
#include "hosts/libvirt_storage.h"

namespace vmshift::core {

struct Preflight {
  GuestView guest;
  DestView dest;
  LinkRate link;
  MigrationPlan plan;
  // Keeps dest.storage valid (it may hold transient pools on the host).
  std::unique_ptr<hosts::LibvirtStorage> dest_storage;
  std::unique_ptr<hosts::LibvirtStorage> source_storage;
};

struct PreflightOptions {
  // Measure the guest's memory dirty rate (libvirt's dirty-rate
  // calculation, about 1 s) and disk write rate for the prediction.
  bool measure = true;
  std::chrono::seconds measure_time{1};
};

// The inventory host that has the VM (the one where it runs, if several
// define it). Throws Error(kNotFound) naming the hosts tried.
std::string find_vm_host(const hosts::Inventory& inventory, const std::string& vm);

// The link rate between two hosts: the inventory's link_rate (the lower of
// the two), else what the newest completed migration between them
// achieved (from the job store), else an assumed 1 Gbit/s.
LinkRate link_rate(const hosts::Inventory& inventory, const std::string& a, const std::string& b,
                   JobStore* history);

// The hosts that see a path of `host`: that host, and every host of a
// shared inventory storage location that holds the path.
std::vector<std::string> hosts_seeing(const hosts::Inventory& inventory, const std::string& host,
                                      const std::string& path);

// The files the defined VMs (running or not) of these hosts use: each
// disk's file and backing chain, in the running and the stored definition;
// path -> "VM 'b' on host 'host1'". Throws Error naming a host it cannot
// ask: a check that cannot look must not pass.
std::map<std::string, std::string> files_in_use(const hosts::Inventory& inventory,
                                                const std::vector<std::string>& hosts);

Preflight preflight(const hosts::Inventory& inventory, const PlanRequest& request,
                    JobStore* history, const PreflightOptions& options = {});

}  // namespace vmshift::core
