#include "core/preflight.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "base/error.h"
#include "base/format.h"
#include "base/json.h"
#include "base/log.h"
#include "base/poll_until.h"
#include "guest/libvirt_guest.h"
#include "hosts/domain.h"
#include "hosts/xml.h"
#include "migrate/kind.h"

namespace vmshift::core {
namespace {

constexpr double kAssumedLink = 1e9 / 8;  // 1 Gbit/s

struct Rates {
  std::optional<double> dirty;
  std::optional<double> disk_writes;
  std::string note;
};

std::uint64_t written_bytes(virDomainPtr dom, const std::vector<guest::DiskInfo>& disks) {
  std::uint64_t sum = 0;
  for (const auto& d : disks) {
    virDomainBlockStatsStruct st{};
    if (virDomainBlockStats(dom, d.target.c_str(), &st, sizeof st) == 0 && st.wr_bytes > 0)
      sum += static_cast<std::uint64_t>(st.wr_bytes);
    else
      virResetLastError();
  }
  return sum;
}

// libvirt's dirty-rate calculation (QEMU's calc-dirty-rate, page sampling)
// over `period`, and the disks' write rate over the same time.
Rates measure(virDomainPtr dom, const std::vector<guest::DiskInfo>& disks,
              std::chrono::seconds period) {
  Rates r;
  auto start = std::chrono::steady_clock::now();
  std::uint64_t written0 = written_bytes(dom, disks);
  bool calc = false;
  {
    log::Trace trace("libvirt", "virDomainStartDirtyRateCalc", "vm='{}' period={} s",
                     hosts::domain_name(dom), period.count());
    calc = virDomainStartDirtyRateCalc(dom, static_cast<int>(period.count()), 0) == 0;
  }
  if (!calc) {
    virErrorPtr e = virGetLastError();
    r.note = fmt::format("libvirt cannot measure it: {}",
                         e != nullptr && e->message != nullptr ? e->message : "no reason given");
    virResetLastError();
    std::this_thread::sleep_for(period);
  }
  Deadline limit = Deadline::after(period + std::chrono::seconds(5));
  // Asked every 200 ms until it is measured, libvirt fails, or the limit.
  bool over = !calc || poll_until(limit, std::chrono::milliseconds(200), [&] {
    virDomainPtr doms[] = {dom, nullptr};
    virDomainStatsRecordPtr* raw = nullptr;
    log::Trace trace("libvirt", "virDomainListGetStats", "vm='{}' stats=DIRTYRATE",
                     hosts::domain_name(dom));
    int n = virDomainListGetStats(doms, VIR_DOMAIN_STATS_DIRTYRATE, &raw, 0);
    hosts::StatsRecords records(raw);
    if (n < 0) {
      virResetLastError();
      r.note = "libvirt gave no dirty-rate statistics";
      return true;
    }
    int status = -1;
    long long mib = -1;
    if (n > 0) {
      virTypedParamsGetInt(records[0]->params, records[0]->nparams, "dirtyrate.calc_status",
                           &status);
      virTypedParamsGetLLong(records[0]->params, records[0]->nparams,
                             "dirtyrate.megabytes_per_second", &mib);
    }
    if (status == VIR_DOMAIN_DIRTYRATE_MEASURED && mib >= 0) {
      r.dirty = static_cast<double>(mib) * 1024 * 1024;
      return true;
    }
    return false;
  });
  if (!over) r.note = "the dirty-rate calculation did not finish in time";
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::uint64_t written1 = written_bytes(dom, disks);
  if (elapsed > 0 && written1 >= written0)
    r.disk_writes = static_cast<double>(written1 - written0) / elapsed;
  return r;
}

std::string peer_uri_of(const hosts::HostConfig& h) {
  if (h.peer_uri) return *h.peer_uri;
  return h.uri;  // the same URI works from the other host (e.g. qemu+ssh://host/system)
}

}  // namespace

std::string choose_vm_host(const std::string& vm, const std::vector<VmSighting>& sightings,
                           const std::string& inventory_source) {
  std::vector<std::string> defined, active, unreachable;
  for (const auto& s : sightings) {
    if (s.unreachable) unreachable.push_back(s.host);
    if (s.defined) defined.push_back(s.host);
    if (s.active) active.push_back(s.host);
  }
  if (active.size() == 1) return active.front();
  if (active.size() > 1)
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("VM '{}' runs on several hosts ({}): say which with --host", vm,
                            fmt::join(active, ", ")));
  if (defined.size() == 1) return defined.front();
  if (defined.size() > 1)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("VM '{}' is defined on {}: say which with --host", vm,
                            fmt::join(defined, " and ")));
  throw Error(
      ErrorCode::kNotFound,
      fmt::format("no VM named '{}' on any host of the inventory {}{}", vm, inventory_source,
                  unreachable.empty()
                      ? ""
                      : fmt::format(" (unreachable: {})", fmt::join(unreachable, ", "))));
}

std::string find_vm_host(const hosts::Inventory& inv, const std::string& vm) {
  std::vector<VmSighting> sightings;
  for (const auto& h : inv.hosts()) {
    VmSighting s{.host = h.name};
    try {
      hosts::Connection c = hosts::Connection::open(h.uri, h.name);
      log::Trace trace("libvirt", "virDomainLookupByName", "vm='{}' host='{}'", vm, h.name);
      virDomainPtr d = virDomainLookupByName(c.get(), vm.c_str());
      if (d == nullptr) {
        virResetLastError();
      } else {
        hosts::Domain dom(d);
        s.defined = true;
        s.active = hosts::domain_active(dom.get());
      }
    } catch (const Error&) {
      s.unreachable = true;
    }
    sightings.push_back(s);
  }
  return choose_vm_host(vm, sightings, inv.source());
}

FileFacts probe_files(const ProbeList& probes, hosts::Storage& storage) {
  FileFacts out;
  auto exists = [&](const std::string& path) -> const FileProbe& {
    auto it = out.files.find(path);
    if (it != out.files.end()) return it->second;
    FileProbe p;
    try {
      p.exists = storage.exists(path);
    } catch (const Error& e) {
      p.error = e.what();
    }
    return out.files.emplace(path, p).first->second;
  };
  for (const auto& f : probes.files) exists(f);
  for (const auto& d : probes.dirs) {
    DirProbe p;
    try {
      p.free_bytes = storage.free_bytes(d);
    } catch (const Error& e) {
      p.error = e.what();
    }
    out.dirs.emplace(d, p);
  }
  for (const auto& [a, b] : probes.same) {
    if (!exists(b).exists) continue;
    SameFileProbe p;
    try {
      p.same = storage.same_file(a, b);
    } catch (const Error& e) {
      p.error = e.what();
    }
    out.same.emplace(std::make_pair(a, b), p);
  }
  for (const auto& path : probes.identities) {
    if (!exists(path).exists) continue;
    IdentityProbe p;
    try {
      p.identity = storage.identity(path);
    } catch (const Error& e) {
      p.error = e.what();
    }
    out.identities.emplace(path, p);
  }
  return out;
}

LinkRate link_rate(const hosts::Inventory& inv, const std::string& a, const std::string& b,
                   JobStore* history) {
  std::optional<double> configured;
  for (const auto& name : {a, b}) {
    for (const auto& h : inv.hosts())
      if (h.name == name && h.link_rate)
        configured = configured ? std::min(*configured, *h.link_rate) : *h.link_rate;
  }
  if (configured)
    return {*configured, fmt::format("{}/s, from the inventory's link_rate",
                                     human_bytes(static_cast<std::uint64_t>(*configured)))};
  if (history != nullptr) {
    for (const Job& j : history->list(200)) {
      // Only the kinds that move memory over the link measure it.
      const migrate::JobKind* kind = migrate::find_job_kind(j.type);
      if (j.state != JobState::kCompleted || kind == nullptr || !kind->memory_rate) continue;
      bool between =
          (j.source_host == a && j.dest_host == b) || (j.source_host == b && j.dest_host == a);
      if (!between || !j.started || !j.ended || j.bytes_done <= 0) continue;
      // QEMU's own transfer rate, when the job kept it.
      if (std::optional<double> bps = kind->memory_rate(j.state_data))
        return {*bps, fmt::format("{}/s, measured by job {}",
                                  human_bytes(static_cast<std::uint64_t>(*bps)), j.id)};
      double secs = std::chrono::duration<double>(*j.ended - *j.started).count();
      if (secs <= 0) continue;
      double rate = static_cast<double>(j.bytes_done) / secs;
      return {rate, fmt::format("{}/s, measured by job {} ({} in {:.1f} s)",
                                human_bytes(static_cast<std::uint64_t>(rate)), j.id,
                                human_bytes(static_cast<std::uint64_t>(j.bytes_done)), secs)};
    }
  }
  return {kAssumedLink,
          "125.0 MiB/s (1 Gbit/s), assumed: set link_rate in the inventory, or "
          "the first migration between the hosts measures it"};
}

std::vector<std::string> hosts_seeing(const hosts::Inventory& inv, const std::string& host,
                                      const std::string& path) {
  std::vector<std::string> out{host};
  for (const auto& s : inv.storage()) {
    if (!s.shared || std::find(s.hosts.begin(), s.hosts.end(), host) == s.hosts.end()) continue;
    bool inside = path == s.path || (path.size() > s.path.size() && path.starts_with(s.path) &&
                                     (s.path == "/" || path[s.path.size()] == '/'));
    if (!inside) continue;
    for (const auto& h : s.hosts)
      if (std::find(out.begin(), out.end(), h) == out.end()) out.push_back(h);
  }
  return out;
}

std::map<std::string, std::string> files_in_use(const hosts::Inventory& inv,
                                                const std::vector<std::string>& names) {
  std::map<std::string, std::string> used;
  for (const auto& name : names) {
    const hosts::HostConfig& h = inv.host(name);
    hosts::Connection c = hosts::Connection::open(h.uri, h.name);
    virDomainPtr* list = nullptr;
    log::Trace trace("libvirt", "virConnectListAllDomains", "host='{}'", name);
    int n = virConnectListAllDomains(c.get(), &list, 0);
    if (n < 0)
      hosts::throw_libvirt(
          fmt::format("cannot list the VMs of host '{}' to check which files they use", name));
    for (const auto& d : hosts::take_list<hosts::Domain>(list, n)) {
      const char* vm = virDomainGetName(d.get());
      std::string who = fmt::format("VM '{}' on host '{}'", vm != nullptr ? vm : "?", name);
      std::vector<unsigned> flags = {0};
      if (virDomainIsPersistent(d.get()) == 1 && hosts::domain_active(d.get()))
        flags.push_back(VIR_DOMAIN_XML_INACTIVE);
      for (unsigned f : flags) {
        hosts::Xml xml = hosts::Xml::parse(hosts::domain_xml(d.get(), f));
        for (const auto& p : xml.all("/domain/devices/disk//source/@file")) used.emplace(p, who);
      }
    }
  }
  return used;
}

Preflight preflight(const hosts::Inventory& inv, const PlanRequest& req, JobStore* history,
                    const PreflightOptions& opts) {
  Preflight pf;
  Facts& f = pf;
  f.request = req;
  f.inventory = inv;
  GuestView& g = f.guest;
  DestView& dest = f.dest;
  const hosts::HostConfig& src_cfg = inv.host(req.source_host);
  hosts::Connection src = hosts::Connection::open(src_cfg.uri, src_cfg.name);
  hosts::Domain dom = src.domain(req.vm);
  if (virConnectGetLibVersion(src.get(), &g.source_libvirt_version) != 0) virResetLastError();
  bool active = hosts::domain_active(dom.get());
  g.state = hosts::domain_state(dom.get());
  g.domain = hosts::parse_domain(
      hosts::domain_xml(dom.get(), active ? 0 : static_cast<unsigned>(VIR_DOMAIN_XML_INACTIVE)));
  hosts::LibvirtStorage source_storage(src);
  guest::LibvirtGuest lg(src, req.vm);
  std::vector<guest::DiskInfo> disks = lg.disks();
  for (const auto& d : disks) {
    PlanDisk pd;
    pd.info = d;
    for (const auto& b : d.backing) pd.chain_allocation += lg.storage().allocation(b).value_or(0);
    if (!d.path.empty()) pd.location = inv.storage_for(req.source_host, d.path);
    g.disks.push_back(pd);
  }

  // The destination. Its storage probes the destination's files (it may
  // hold transient pools on the host while it lives).
  const std::string& dest_name = req.options.dest_host;
  dest.host = dest_name;
  std::unique_ptr<hosts::LibvirtStorage> dest_storage;
  try {
    const hosts::HostConfig& dst_cfg = inv.host(dest_name);
    dest.peer_uri = peer_uri_of(dst_cfg);
    if (dst_cfg.migration_address) dest.migrate_uri = "tcp://" + *dst_cfg.migration_address;
    hosts::Connection dst = hosts::Connection::open(dst_cfg.uri, dst_cfg.name);
    dest.free_memory = dst.free_memory();
    dest.domain_names = dst.domain_names();
    dest.domain_uuids = dst.domain_uuids();
    dest.networks = dst.networks();
    dest.interfaces = dst.interfaces();
    const hosts::DomainFacts& d = g.domain;
    try {
      dest.domcaps_xml = dst.domain_capabilities(d.emulator, d.arch, d.machine, d.virt_type);
      if (!d.cpu_xml.empty())
        dest.cpu_incompatible =
            dst.cpu_incompatibility(d.cpu_xml, d.emulator, d.arch, d.machine, d.virt_type);
    } catch (const Error& e) {
      dest.domcaps_error = e.what();
    }
    dest_storage = std::make_unique<hosts::LibvirtStorage>(dst);
  } catch (const Error& e) {
    dest.error = e.what();
  }

  f.link = link_rate(inv, req.source_host, dest_name, history);
  if (active && opts.measure && dest.error.empty()) {
    Rates r = measure(dom.get(), disks, opts.measure_time);
    g.dirty_bytes_per_s = r.dirty;
    g.disk_write_bytes_per_s = r.disk_writes;
    g.measure_note = r.note;
  } else if (active && !opts.measure) {
    g.measure_note = "not measured: --no-measure";
  }
  // --force: which files the VMs of every host that sees a destination use.
  if (req.options.force && dest.error.empty()) {
    std::vector<std::string> dirs;
    if (req.options.storage)
      for (const auto& st : inv.storage())
        if (st.name == *req.options.storage) dirs.push_back(st.path + "/");
    for (const auto& [t, p] : req.options.disks)
      if (!p.empty()) dirs.push_back(p);
    for (const auto& pd : g.disks)
      if (!pd.info.path.empty()) dirs.push_back(pd.info.path);
    std::vector<std::string> names;
    for (const auto& d : dirs)
      for (const auto& h : hosts_seeing(inv, dest_name, d))
        if (std::find(names.begin(), names.end(), h) == names.end()) names.push_back(h);
    try {
      dest.in_use = files_in_use(inv, names);
    } catch (const Error& e) {
      dest.in_use_error = e.what();
    }
  }
  // The files and directories the plan depends on, on each host.
  Probes probes = files_to_probe(f);
  f.source_files = probe_files(probes.source, source_storage);
  if (dest_storage) f.dest_files = probe_files(probes.dest, *dest_storage);

  pf.plan = plan_migration(f);
  return pf;
}

}  // namespace vmshift::core
