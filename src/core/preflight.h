// Gathers what the planner needs from the two hosts (libvirt only: works
// from a machine that sees neither host's files), then plans: every probe
// of a host (domain lookups, storage, free space, dirty rate, files in use)
// is made here, and the planner decides from the Facts alone.
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

// The facts gathered (the files probed included), and the plan made from
// them; plan_migration(preflight) plans again with changed facts.
struct Preflight : Facts {
  MigrationPlan plan;
};

struct PreflightOptions {
  // Measure the guest's memory dirty rate (libvirt's dirty-rate
  // calculation, about 1 s) and disk write rate for the prediction.
  bool measure = true;
  std::chrono::seconds measure_time{1};
};

// What one inventory host said about a VM.
struct VmSighting {
  std::string host;
  bool defined = false;
  bool active = false;
  bool unreachable = false;
};

// The host of a VM, for every command that names a VM without --host:
// the host where it runs; else the one host that defines it. Throws
// Error naming the hosts when it runs on several
// (kFailedPrecondition), when several define it and it runs on none
// (kInvalidArgument: say which with --host), and when none has it
// (kNotFound, with the hosts that did not answer).
std::string choose_vm_host(const std::string& vm, const std::vector<VmSighting>& sightings,
                           const std::string& inventory_source);

// choose_vm_host over what each host of the inventory says.
std::string find_vm_host(const hosts::Inventory& inventory, const std::string& vm);

// Makes the probes on one host's storage; a probe that throws keeps the
// error (its check then fails with "cannot check: ...").
FileFacts probe_files(const ProbeList& probes, hosts::Storage& storage);

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
