#include "core/job_hosts.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/error.h"
#include "core/preflight.h"
#include "guest/libvirt_guest.h"
#include "guest/qmp_guest.h"
#include "hosts/libvirt.h"
#include "hosts/libvirt_host.h"
#include "transfer/libvirt_volume.h"

namespace vmshift::core {
namespace {

// A libvirt host and its files through volume streams, for the copy engine.
struct LibvirtSite : migrate::OpenSite {
  hosts::LibvirtHost host;
  migrate::Site libvirt_site;
  explicit LibvirtSite(hosts::Connection conn)
      : host(std::move(conn)),
        libvirt_site{host, [this](const std::string& path) -> std::unique_ptr<transfer::Endpoint> {
                       return std::make_unique<transfer::LibvirtVolume>(host.libvirt_storage(),
                                                                        path);
                     }} {}
  LibvirtSite(const LibvirtSite&) = delete;
  LibvirtSite& operator=(const LibvirtSite&) = delete;
  migrate::Site& site() override { return libvirt_site; }
};

std::unique_ptr<LibvirtSite> open_libvirt_site(const hosts::Inventory& inv,
                                               const std::string& name) {
  const hosts::HostConfig& h = inv.host(name);
  return std::make_unique<LibvirtSite>(hosts::Connection::open(h.uri, h.name));
}

}  // namespace

std::unique_ptr<guest::Guest> open_guest(const GuestSpec& spec, const hosts::Inventory& inv) {
  if (spec.kind == "qmp") return std::make_unique<guest::QmpGuest>(spec.socket);
  const hosts::HostConfig& h = inv.host(spec.host);
  return std::make_unique<guest::LibvirtGuest>(hosts::Connection::open(h.uri, h.name), spec.vm);
}

std::map<std::string, std::string> move_storage_in_use(const hosts::Inventory& inv,
                                                       const GuestSpec& spec,
                                                       const migrate::LiveStorageOptions& o) {
  if (!o.force || spec.kind != "libvirt") return {};
  std::vector<std::string> paths;
  if (o.to_dir) paths.push_back(*o.to_dir + "/");
  for (const auto& [t, p] : o.disks)
    if (!p.empty()) paths.push_back(p);
  std::vector<std::string> names;
  for (const auto& p : paths)
    for (const auto& h : hosts_seeing(inv, spec.host, p))
      if (std::find(names.begin(), names.end(), h) == names.end()) names.push_back(h);
  return files_in_use(inv, names);
}

LimitFn limits_from(const hosts::Inventory& inv) {
  return [&inv](const std::string& host, LimitClass kind) {
    for (const auto& h : inv.hosts())
      if (h.name == host)
        return kind == LimitClass::kStorage ? h.max_storage_migrations : h.max_live_migrations;
    return 2;  // a host the inventory no longer lists, or a bare QEMU
  };
}

Comparison compare_files(const hosts::Inventory& inv, const std::string& host_a,
                         const std::string& path_a, const std::string& host_b,
                         const std::string& path_b, std::uint64_t chunk_size) {
  std::unique_ptr<LibvirtSite> a = open_libvirt_site(inv, host_a);
  std::unique_ptr<LibvirtSite> b = open_libvirt_site(inv, host_b);
  std::unique_ptr<transfer::Endpoint> ea = a->site().open(path_a);
  std::unique_ptr<transfer::Endpoint> eb = b->site().open(path_b);
  for (auto* e : {ea.get(), eb.get()})
    if (!e->exists())
      throw Error(ErrorCode::kNotFound, fmt::format("there is no file {}", e->describe()));
  return {transfer::verify(*ea, *eb, chunk_size), ea->describe(), eb->describe(), chunk_size};
}

std::unique_ptr<migrate::OpenSite> InventoryHosts::open_site(const std::string& host) {
  return open_libvirt_site(inv_, host);
}

std::unique_ptr<guest::Guest> InventoryHosts::open_guest(const GuestSpec& spec) {
  return core::open_guest(spec, inv_);
}

std::map<std::string, std::string> InventoryHosts::files_in_use(const std::string& host,
                                                                const std::string& path) {
  return core::files_in_use(inv_, hosts_seeing(inv_, host, path));
}

migrate::LiveStoragePlan InventoryHosts::plan_storage_move(
    guest::Guest& guest, const GuestSpec& spec, const migrate::LiveStorageOptions& options) {
  return migrate::plan_live_storage(guest, options, move_storage_in_use(inv_, spec, options));
}

migrate::Recheck InventoryHosts::check_migration(const std::string& vm,
                                                 const std::string& source_host,
                                                 const migrate::LiveMigrationOptions& options) {
  PlanRequest req{vm, source_host, options};
  Preflight pf = preflight(inv_, req, nullptr, PreflightOptions{.measure = false});
  if (!pf.plan.ok()) return {std::nullopt, fmt::format("{}", fmt::join(pf.plan.failures(), "; "))};
  return {pf.plan.live, ""};
}

}  // namespace vmshift::core
