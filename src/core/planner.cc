#include "core/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "base/bandwidth.h"
#include "base/error.h"
#include "base/format.h"
#include "hosts/libvirt_storage.h"
#include "hosts/xml.h"
#include "migrate/quick_migration.h"

namespace vmshift::core {
namespace {

using migrate::DiskMove;

constexpr std::uint64_t kMemoryMargin = 64ull << 20;  // QEMU's own overhead on the destination

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

bool sees(const hosts::StorageConfig& s, const std::string& host) {
  return contains(s.hosts, host);
}

class Checks {
 public:
  void pass(std::string name, std::string reason) {
    v_.push_back({std::move(name), CheckStatus::kPass, std::move(reason)});
  }
  void warn(std::string name, std::string reason) {
    v_.push_back({std::move(name), CheckStatus::kWarn, std::move(reason)});
  }
  void fail(std::string name, std::string reason) {
    v_.push_back({std::move(name), CheckStatus::kFail, std::move(reason)});
  }
  void add(Check c) { v_.push_back(std::move(c)); }
  std::vector<Check> take() { return std::move(v_); }

 private:
  std::vector<Check> v_;
};

bool running(const std::string& state) { return state == "running" || state == "paused"; }

std::string join_or(const std::vector<std::string>& v, const std::string& none) {
  return v.empty() ? none : fmt::format("{}", fmt::join(v, ", "));
}

}  // namespace

std::string_view to_string(CheckStatus s) noexcept {
  switch (s) {
    case CheckStatus::kPass:
      return "pass";
    case CheckStatus::kWarn:
      return "warn";
    case CheckStatus::kFail:
      return "fail";
  }
  return "?";
}

bool MigrationPlan::ok() const {
  return std::none_of(checks.begin(), checks.end(),
                      [](const Check& c) { return c.status == CheckStatus::kFail; });
}

std::vector<std::string> MigrationPlan::failures() const {
  std::vector<std::string> out;
  for (const auto& c : checks)
    if (c.status == CheckStatus::kFail) out.push_back(fmt::format("{}: {}", c.name, c.reason));
  return out;
}

const std::vector<std::string>& transfer_types() {
  static const std::vector<std::string> types = {"live", "live-vsm", "quick", "qsm", "network"};
  return types;
}

bool runnable_type(std::string_view type) {
  return type == "live" || type == "live-vsm" || type == "qsm" || type == "quick" ||
         type == "network";
}

Check check_cpu(const hosts::DomainFacts& d, const DestView& dest) {
  Check c{"cpu", CheckStatus::kPass, ""};
  auto libvirt_says = [&](Check& ch) {
    if (dest.cpu_incompatible && !dest.cpu_incompatible->empty()) {
      ch.status = CheckStatus::kFail;
      ch.reason = fmt::format("host '{}' cannot provide the guest's CPU: {}", dest.host,
                              *dest.cpu_incompatible);
      return true;
    }
    return false;
  };
  if (d.cpu_mode.empty()) {
    c.reason = "the guest uses the hypervisor's default CPU model";
    return c;
  }
  if (d.cpu_mode == "host-passthrough" || d.cpu_mode == "maximum") {
    if (libvirt_says(c)) return c;
    c.status = CheckStatus::kWarn;
    c.reason = fmt::format(
        "the guest sees the host's own CPU (mode {}): safe only between hosts with identical CPUs "
        "(a common model: vmshift hosts baseline)",
        d.cpu_mode);
    return c;
  }
  if (d.cpu_mode == "custom" && !d.cpu_model.empty() && !dest.domcaps_xml.empty()) {
    hosts::Xml caps = hosts::Xml::parse(dest.domcaps_xml);
    std::string model =
        fmt::format("/domainCapabilities/cpu/mode[@name='custom']/model[.='{}']", d.cpu_model);
    if (caps.count(model) == 0) {
      c.status = CheckStatus::kFail;
      c.reason = fmt::format("host '{}' does not know the CPU model {}", dest.host, d.cpu_model);
      return c;
    }
    if (caps.text(model + "/@usable") == "no") {
      std::vector<std::string> missing = caps.all(fmt::format(
          "/domainCapabilities/cpu/mode[@name='custom']/blockers[@model='{}']/feature/@name",
          d.cpu_model));
      c.status = CheckStatus::kFail;
      c.reason = fmt::format(
          "the CPU model {} is not usable on host '{}'{}", d.cpu_model, dest.host,
          missing.empty() ? "" : fmt::format(" (missing: {})", fmt::join(missing, ", ")));
      return c;
    }
  }
  if (libvirt_says(c)) return c;
  c.reason = d.cpu_model.empty()
                 ? fmt::format("CPU mode {} is available on host '{}'", d.cpu_mode, dest.host)
                 : fmt::format("CPU model {} is available on host '{}'", d.cpu_model, dest.host);
  return c;
}

MigrationPlan plan_migration(const PlanRequest& req, const GuestView& g, const DestView& dest,
                             const hosts::Inventory& inv, const LinkRate& link) {
  MigrationPlan plan;
  plan.link = link;
  Checks checks;
  const migrate::LiveMigrationOptions& o = req.options;
  const hosts::DomainFacts& d = g.domain;
  plan.live.vm = req.vm;
  plan.live.source_host = req.source_host;
  plan.live.dest_host = dest.host;
  plan.live.dest_peer_uri = dest.peer_uri;
  plan.live.migrate_uri = dest.migrate_uri;
  plan.live.memory_bytes = d.memory_bytes;

  // ---- which type
  bool moving = o.storage.has_value() || !o.disks.empty();
  std::vector<std::string> local;  // disks the destination does not see
  for (const auto& pd : g.disks) {
    if (pd.info.path.empty()) continue;
    if (!pd.location || !pd.location->shared || !sees(*pd.location, dest.host))
      local.push_back(fmt::format(
          "{} ({})", pd.info.target,
          pd.location ? fmt::format("on {}", pd.location->name) : "not in the inventory"));
  }
  std::string type, why;
  if (running(g.state)) {
    if (!local.empty()) {
      type = "live-vsm";
      why = fmt::format(
          "the VM is {} and disk{} {} must be copied: memory and disks move "
          "together (live VM-and-storage migration)",
          g.state, local.size() == 1 ? "" : "s", fmt::join(local, ", "));
    } else if (moving) {
      type = "live-vsm";
      why = fmt::format("the VM is {} and its disks are asked to move (--storage/--disk)", g.state);
    } else {
      type = "live";
      why = fmt::format(
          "the VM is {} and every disk is on storage host '{}' shares: only memory "
          "and device state move",
          g.state, dest.host);
    }
  } else if (g.state == "shut off") {
    type = "network";
    why =
        "the VM is shut off: its disks and definition are copied to the destination (network "
        "migration)";
  } else {
    type = "live";
    why = fmt::format("the VM is {}", g.state);
    checks.fail("state", fmt::format("the VM is {}: vmshift moves running, paused or shut-off "
                                     "VMs",
                                     g.state));
  }
  if (o.type) {
    std::string forced = *o.type;
    if (!contains(transfer_types(), forced)) {
      checks.fail("type", fmt::format("unknown transfer type '{}' (known: {})", forced,
                                      fmt::join(transfer_types(), ", ")));
    } else if ((forced == "live" || forced == "live-vsm") && !running(g.state)) {
      checks.fail("type", fmt::format("--type {} needs a running VM; the VM is {} (it would "
                                      "be a network migration)",
                                      forced, g.state));
    } else if (forced == "live" && (!local.empty() || moving)) {
      checks.fail("type",
                  !local.empty()
                      ? fmt::format("--type live keeps the disks where they are, but host '{}' "
                                    "does not see {}: use --type live-vsm, which copies them",
                                    dest.host, fmt::join(local, ", "))
                      : "--type live moves no disks, but --storage/--disk asks to move them");
    } else if ((forced == "qsm" || forced == "quick") && !running(g.state)) {
      checks.fail("type", fmt::format("--type {} needs a running VM; the VM is {} (it would "
                                      "be a network migration)",
                                      forced, g.state));
    } else if (forced == "quick" && (!local.empty() || moving)) {
      // Without shared storage a quick migration becomes a QSM.
      type = "qsm";
      why = fmt::format(
          "--type quick, but {}: without shared storage a quick migration is a "
          "quick storage migration (qsm)",
          !local.empty()
              ? fmt::format("host '{}' does not see {}", dest.host, fmt::join(local, ", "))
              : std::string("the disks are asked to move"));
    } else if (forced == "network" && running(g.state)) {
      checks.fail("type", fmt::format("--type network moves a stopped VM; the VM is {}: shut it "
                                      "down first, or use live or live-vsm",
                                      g.state));
    } else {
      if (forced != type)
        why = fmt::format("--type {} (the automatic choice would be {})", forced, type);
      type = forced;
    }
  }
  plan.type = type;
  plan.why = why;
  if (!runnable_type(type))
    checks.fail("type",
                fmt::format("{} migration is not available in this version of vmshift", type));

  // ---- destination
  if (!dest.error.empty()) {
    checks.fail("destination", dest.error);
    plan.checks = checks.take();
    return plan;
  }
  // On its own host a VM's storage can move by QSM or network migration.
  bool same_host = dest.host == req.source_host;
  if (same_host && !((type == "qsm" || type == "network") && moving)) {
    checks.fail("destination", fmt::format("the VM is already on host '{}' (to move its disks "
                                           "on the same host: vmshift move-storage, or --type "
                                           "qsm with --storage or --disk)",
                                           dest.host));
    plan.checks = checks.take();
    return plan;
  }
  checks.pass("destination",
              same_host ? fmt::format("the VM stays on host '{}'; its disks move", dest.host)
                        : fmt::format("host '{}' answers", dest.host));

  // ---- name and UUID
  if (same_host)
    checks.pass("name", "the VM keeps its definition");
  else if (contains(dest.domain_names, d.name))
    checks.fail("name", fmt::format("host '{}' already has a VM named '{}'", dest.host, d.name));
  else if (!d.uuid.empty() && contains(dest.domain_uuids, d.uuid))
    checks.fail("name", fmt::format("host '{}' already has a VM with UUID {}", dest.host, d.uuid));
  else
    checks.pass("name",
                fmt::format("no VM named '{}' or with its UUID on host '{}'", d.name, dest.host));

  // ---- CPU, machine and emulator
  checks.add(check_cpu(d, dest));
  if (!dest.domcaps_error.empty())
    checks.fail("machine", dest.domcaps_error);
  else
    checks.pass("machine", fmt::format("host '{}' runs {} guests of machine type {} with {}",
                                       dest.host, d.virt_type, d.machine, d.emulator));

  // ---- memory
  std::uint64_t want = d.memory_bytes + kMemoryMargin;
  if (same_host)
    checks.pass("memory", "the VM stays on its host");
  else if (!running(g.state))
    checks.pass("memory", "the VM is not running: no memory needed until it starts");
  else if (dest.free_memory < want)
    checks.fail("memory", fmt::format("host '{}' has {} free; the VM needs {} (and {} for QEMU)",
                                      dest.host, human_bytes(dest.free_memory),
                                      human_bytes(d.memory_bytes), human_bytes(kMemoryMargin)));
  else if (dest.free_memory < want + want / 4)
    checks.warn("memory",
                fmt::format("host '{}' has {} free for {}: little left afterwards", dest.host,
                            human_bytes(dest.free_memory), human_bytes(d.memory_bytes)));
  else
    checks.pass("memory",
                fmt::format("{} needed, {} free on host '{}'", human_bytes(d.memory_bytes),
                            human_bytes(dest.free_memory), dest.host));

  // ---- TCG: QEMU 7.2 under TCG loses memory writes of a guest during a
  // migration, the more the longer it runs: guests crashed on the
  // destination in 10 of 15 slow lab migrations (post-copy, or a pause
  // after many passes), plain `virsh migrate` included
  // (docs/live-migration.md). The options made for migrations that do not
  // converge are refused there.
  bool live = type == "live" || type == "live-vsm";
  if (live && running(g.state) && d.virt_type == "qemu") {
    std::vector<std::string> risky;
    if (o.postcopy) risky.push_back("--postcopy");
    if (o.timeout_action == "suspend") risky.push_back("--timeout-action suspend");
    if (!risky.empty())
      checks.fail("tcg", fmt::format("{} is refused for a guest under TCG (software emulation): "
                                     "after many passes QEMU 7.2 lost memory writes of such "
                                     "guests, which then crashed on the destination; give the "
                                     "migration more bandwidth or quiet the guest",
                                     fmt::join(risky, " and ")));
  }
  if (o.postcopy && running(g.state) && d.virt_type != "qemu")
    checks.pass("postcopy",
                "allowed: the VM may switch to the destination before all of its "
                "memory has arrived (a network failure then loses the VM)");

  // ---- compression
  if (!o.compress.empty()) {
    if (o.compress == "zstd" && g.source_libvirt_version < 9004000)
      checks.fail(
          "compress",
          fmt::format("zstd over multifd needs libvirt 9.4 or newer on host '{}' (it has "
                      "{}.{}.{}): use --compress xbzrle or --compress mt",
                      req.source_host, g.source_libvirt_version / 1000000,
                      g.source_libvirt_version / 1000 % 1000, g.source_libvirt_version % 1000));
    else
      checks.pass("compress",
                  fmt::format("memory compressed with {}{}", o.compress,
                              o.parallel > 0 || o.compress == "zstd"
                                  ? fmt::format(" over {} connections", std::max(o.parallel, 2))
                                  : ""));
  }

  // ---- bandwidth: libvirt limits a migration in whole MiB/s only; a rate
  // it cannot take is refused here, never rounded (copies take any rate)
  if (live && o.bandwidth > 0 && !whole_mib_per_s(o.bandwidth))
    checks.fail(
        "bandwidth",
        fmt::format("--bandwidth {} MiB/s: libvirt limits a {} migration in whole MiB/s "
                    "only; give a whole number",
                    static_cast<double>(o.bandwidth) / static_cast<double>(kBytesPerMiB), type));

  // ---- devices
  if (!d.blockers.empty())
    checks.fail("devices", fmt::format("{}", fmt::join(d.blockers, "; ")));
  else
    checks.pass("devices", "no device that prevents migration");

  // ---- networks
  {
    std::vector<std::string> missing, inactive, unknown, seen;
    for (const auto& n : d.networks) {
      auto it = std::find_if(dest.networks.begin(), dest.networks.end(),
                             [&](const auto& p) { return p.first == n; });
      if (it == dest.networks.end())
        missing.push_back(fmt::format("network '{}'", n));
      else if (!it->second)
        inactive.push_back(fmt::format("network '{}'", n));
      else
        seen.push_back(fmt::format("network '{}'", n));
    }
    std::vector<std::string> devs = d.bridges;
    devs.insert(devs.end(), d.host_devs.begin(), d.host_devs.end());
    for (const auto& b : devs) {
      if (!dest.interfaces)
        unknown.push_back(fmt::format("'{}'", b));
      else if (!contains(*dest.interfaces, b))
        missing.push_back(fmt::format("interface '{}'", b));
      else
        seen.push_back(fmt::format("interface '{}'", b));
    }
    if (!missing.empty() || !inactive.empty())
      checks.fail(
          "networks",
          fmt::format("host '{}' lacks {}{}", dest.host, join_or(missing, ""),
                      inactive.empty() ? ""
                                       : fmt::format("{}inactive: {}", missing.empty() ? "" : "; ",
                                                     fmt::join(inactive, ", "))));
    else if (!unknown.empty())
      checks.warn("networks", fmt::format("host '{}' cannot list its interfaces; make sure it "
                                          "has {}",
                                          dest.host, fmt::join(unknown, ", ")));
    else
      checks.pass("networks", d.networks.empty() && devs.empty()
                                  ? "the VM has no network interface to connect"
                                  : fmt::format("host '{}' has {}", dest.host, join_or(seen, "")));
  }

  // ---- firmware state: QSM, quick and network migrations copy the disks
  // (and the saved state), not the NVRAM file or the vTPM's state, which
  // would stay behind on the source (and libvirt would start the VM there
  // with fresh ones). A live migration carries both in its stream.
  if ((type == "qsm" || type == "quick" || type == "network") &&
      (!d.nvram.empty() || d.tpm_state)) {
    std::vector<std::string> kept;
    if (!d.nvram.empty()) kept.push_back(fmt::format("NVRAM {}", d.nvram));
    if (d.tpm_state) kept.push_back("vTPM state (swtpm)");
    if (same_host)
      checks.pass("firmware", fmt::format("the VM stays on host '{}' with its {}", dest.host,
                                          fmt::join(kept, " and ")));
    else
      checks.fail("firmware",
                  fmt::format("the VM keeps its {} on host '{}', and a {} migration does not "
                              "copy firmware state: refused rather than leave it behind{}",
                              fmt::join(kept, " and "), req.source_host, type,
                              running(g.state) ? " (a live migration carries it: --type live "
                                                 "or live-vsm)"
                                               : ""));
  }

  // ---- other files (kernel, firmware, CD-ROM images, log directories)
  {
    std::vector<std::string> missing, unknown;
    for (const auto& f : d.files) {
      try {
        if (!dest.storage->exists(f)) missing.push_back(f);
      } catch (const Error& e) {
        unknown.push_back(e.what());
      }
    }
    for (const auto& dir : d.file_dirs) {
      try {
        dest.storage->free_bytes(dir);
      } catch (const Error&) {
        missing.push_back(dir + "/");
      }
    }
    if (!unknown.empty())
      checks.fail("files", fmt::format("cannot check: {}", fmt::join(unknown, "; ")));
    else if (!missing.empty())
      checks.fail("files", fmt::format("host '{}' lacks {} (a running VM's other files are not "
                                       "copied)",
                                       dest.host, fmt::join(missing, ", ")));
    else
      checks.pass("files",
                  d.files.empty() && d.file_dirs.empty()
                      ? "no other file needed"
                      : fmt::format("host '{}' has {}", dest.host,
                                    fmt::join(d.files.empty() ? d.file_dirs : d.files, ", ")));
  }

  // ---- disks: which are copied, and where they go
  bool copies = type == "live-vsm" || type == "network" || type == "qsm";
  // QSM and network migrations copy each disk's own file; its backing chain
  // (if any) must be on the destination already, as with --shallow.
  bool top_only = o.shallow || type == "qsm" || type == "network";
  std::map<std::string, std::string> asked;
  for (const auto& [t, p] : o.disks) asked[t] = p;
  std::optional<hosts::StorageConfig> into;
  if (o.storage) {
    for (const auto& s : inv.storage())
      if (s.name == *o.storage) into = s;
    if (!into)
      checks.fail("storage", fmt::format("no storage location '{}' in the inventory", *o.storage));
    else if (!sees(*into, dest.host))
      checks.fail("storage", fmt::format("host '{}' does not see storage '{}' (it is on: {})",
                                         dest.host, into->name, fmt::join(into->hosts, ", ")));
  }
  for (const auto& [t, p] : asked) {
    bool known = std::any_of(g.disks.begin(), g.disks.end(),
                             [&](const PlanDisk& pd) { return pd.info.target == t; });
    if (!known) checks.fail("disks", fmt::format("the VM has no disk '{}'", t));
    if (!p.empty() && p.front() != '/')
      checks.fail("disks",
                  fmt::format("destination '{}' of disk {} must be an absolute path", p, t));
  }
  std::vector<std::string> unseen;          // shared disks the destination should see but does not
  std::vector<std::string> unseen_unknown;  // probes that failed
  std::map<std::string, std::uint64_t> need_per_dir;
  std::map<std::string, std::vector<std::string>> disks_per_dir;
  for (const auto& pd : g.disks) {
    const guest::DiskInfo& di = pd.info;
    if (di.path.empty()) continue;
    bool shared = pd.location && pd.location->shared && sees(*pd.location, dest.host);
    std::string dest_path = di.path;
    if (auto it = asked.find(di.target); it != asked.end() && !it->second.empty())
      dest_path = it->second;
    else if (into)
      dest_path = into->path + "/" + hosts::basename_of(di.path);
    bool copy = copies && (!shared || dest_path != di.path);
    if (!copy) {
      plan.live.shared[di.target] = di.path;
      try {
        if (!dest.storage->exists(di.path))
          unseen.push_back(fmt::format("{} ({})", di.path, di.target));
      } catch (const Error& e) {
        unseen_unknown.push_back(e.what());
      }
      continue;
    }
    DiskMove m = migrate::move_of(di, dest_path);
    // The whole chain becomes one image, unless only the top layer moves.
    m.need = di.allocation + (top_only ? 0 : pd.chain_allocation);
    plan.live.copies.push_back(m);
  }
  // Disks two QEMUs open at once during the switch-over must not be cached
  // by the host: the destination would read what the source has not written.
  if (live && running(g.state)) {
    std::vector<std::string> cached;
    for (const auto& [target, path] : plan.live.shared) {
      auto it = d.disk_cache.find(target);
      std::string mode = it == d.disk_cache.end() ? "" : it->second;
      if (mode == "none" || mode == "directsync" || contains(d.readonly_disks, target)) continue;
      cached.push_back(fmt::format("{} (cache={})", target, mode.empty() ? "default" : mode));
    }
    if (!cached.empty())
      checks.fail("cache", fmt::format("shared disk{} {} must use cache='none' or 'directsync' to "
                                       "move live: with host caching the destination could read "
                                       "data the source has not written yet",
                                       cached.size() == 1 ? "" : "s", fmt::join(cached, ", ")));
  }
  if (!unseen_unknown.empty())
    checks.fail("storage", fmt::format("cannot check: {}", fmt::join(unseen_unknown, "; ")));
  if (!unseen.empty())
    checks.fail("storage", fmt::format("host '{}' does not see {}: the inventory says the "
                                       "storage is shared, but the files are not there",
                                       dest.host, fmt::join(unseen, ", ")));
  // The VM's own files (every disk's file and backing chain) that the
  // destination sees: on its own host, or on storage the inventory says
  // both hosts share (the same path names the same file there).
  std::vector<std::string> own_seen;
  for (const auto& pd : g.disks) {
    std::vector<std::string> files;
    if (!pd.info.path.empty()) files.push_back(pd.info.path);
    files.insert(files.end(), pd.info.backing.begin(), pd.info.backing.end());
    for (const auto& f : files) {
      std::optional<hosts::StorageConfig> at = inv.storage_for(req.source_host, f);
      if (same_host || (at && at->shared && sees(*at, dest.host))) own_seen.push_back(f);
    }
  }
  std::vector<std::string> exist, no_dir, itself, in_use, replaced, dest_unknown;
  for (auto& m : plan.live.copies) {
    std::string dir = hosts::dirname_of(m.dest);
    try {
      dest.storage->free_bytes(dir);
    } catch (const Error& e) {
      no_dir.push_back(fmt::format("{} for disk {}", dir, m.target));
      continue;
    }
    bool there = false;
    try {
      there = dest.storage->exists(m.dest);
    } catch (const Error& e) {
      dest_unknown.push_back(e.what());
      continue;
    }
    // Never onto a file of the move itself, with or without --force.
    std::string own;
    for (const auto& f : own_seen) {
      bool same = f == m.dest;
      if (!same && there) {
        try {
          same = dest.storage->same_file(f, m.dest);
        } catch (const Error& e) {
          same = true;  // cannot tell: never replace it
        }
      }
      if (same) own = f;
    }
    if (!own.empty()) {
      itself.push_back(
          fmt::format("{} (disk {}) is the disk's own file{}", m.dest, m.target,
                      own == m.dest ? "" : fmt::format(" '{}' (through a link)", own)));
      continue;
    }
    if (there) {
      if (!o.force) {
        exist.push_back(fmt::format("{} (disk {})", m.dest, m.target));
      } else if (!dest.in_use_error.empty()) {
        in_use.push_back(fmt::format("{} (disk {}): which VMs use it cannot be checked: {}", m.dest,
                                     m.target, dest.in_use_error));
      } else if (auto it = dest.in_use.find(m.dest); it != dest.in_use.end()) {
        in_use.push_back(fmt::format("{} (disk {}): {} uses it", m.dest, m.target, it->second));
      } else {
        m.replace_existing = true;
        try {
          m.replaces = dest.storage->identity(m.dest);
        } catch (const Error& e) {
          in_use.push_back(
              fmt::format("{} (disk {}): it cannot be looked at: {}", m.dest, m.target, e.what()));
          m.replace_existing = false;
        }
        if (m.replace_existing) replaced.push_back(m.dest);
      }
    }
    need_per_dir[dir] += m.need;
    disks_per_dir[dir].push_back(m.target);
  }
  // Files QSM and quick migrations make must not be there already (a
  // leftover of an interrupted run): libvirt would refuse, and vmshift never
  // deletes what it did not make.
  if (running(g.state) && (type == "qsm" || type == "quick")) {
    std::vector<std::pair<hosts::Storage*, std::string>> made;  // storage, path
    std::string state_dir;
    if (type == "qsm" && !plan.live.copies.empty()) {
      state_dir = hosts::dirname_of(plan.live.copies.front().source);
      for (const auto& m : plan.live.copies) {
        made.emplace_back(g.source_storage, migrate::overlay_path(m.source));
        if (!same_host)
          made.emplace_back(dest.storage, hosts::dirname_of(m.dest) + "/" +
                                              hosts::basename_of(migrate::overlay_path(m.source)));
      }
      if (!same_host)
        made.emplace_back(
            dest.storage,
            migrate::state_path(hosts::dirname_of(plan.live.copies.front().dest), d.name));
    } else if (!plan.live.shared.empty()) {
      state_dir = hosts::dirname_of(plan.live.shared.begin()->second);
    }
    if (!state_dir.empty())
      made.emplace_back(g.source_storage, migrate::state_path(state_dir, d.name));
    std::vector<std::string> there, unknown;
    for (const auto& [storage, path] : made) {
      if (storage == nullptr) continue;
      try {
        if (storage->exists(path)) there.push_back(path);
      } catch (const Error& e) {
        unknown.push_back(e.what());
      }
    }
    if (!unknown.empty())
      checks.fail("leftovers", fmt::format("cannot check: {}", fmt::join(unknown, "; ")));
    if (!there.empty())
      checks.fail("leftovers", fmt::format("{} already exist{} (left by an interrupted run?): "
                                           "check and remove {}",
                                           fmt::join(there, ", "), there.size() == 1 ? "s" : "",
                                           there.size() == 1 ? "it" : "them"));
  }
  // QSM and quick migrations keep the VM's saved state (up to its memory)
  // next to its disks on the destination (on the shared storage for quick).
  if (running(g.state) && (type == "qsm" || type == "quick")) {
    std::string dir =
        type == "qsm" && !plan.live.copies.empty()
            ? hosts::dirname_of(plan.live.copies.front().dest)
            : (plan.live.shared.empty() ? std::string()
                                        : hosts::dirname_of(plan.live.shared.begin()->second));
    if (!dir.empty()) {
      need_per_dir[dir] += d.memory_bytes;
      disks_per_dir[dir].push_back("the saved state");
    } else if (type == "quick") {
      checks.fail("storage",
                  "a quick migration saves the state to storage both hosts share, "
                  "and the VM has no disk on any");
    }
  }
  // --shallow: the copies' top layers sit on the same backing chain, which
  // the destination must see at the same paths.
  if (top_only) {
    std::vector<std::string> lacking, seen, unknown;
    for (const auto& m : plan.live.copies)
      for (const auto& b : m.backing) {
        bool there = false;
        try {
          there = dest.storage->exists(b);
        } catch (const Error& e) {
          unknown.push_back(e.what());
          continue;
        }
        (there ? seen : lacking).push_back(fmt::format("{} (disk {})", b, m.target));
      }
    std::string how = o.shallow ? std::string("--shallow copies only the top layer")
                                : fmt::format("a {} migration copies each disk's own file", type);
    if (!unknown.empty())
      checks.fail("backing", fmt::format("cannot check: {}", fmt::join(unknown, "; ")));
    else if (!lacking.empty())
      checks.fail("backing",
                  fmt::format("{}, but host '{}' lacks the backing file{} {}", how, dest.host,
                              lacking.size() == 1 ? "" : "s", fmt::join(lacking, ", ")));
    else if (!seen.empty())
      checks.pass("backing", fmt::format("host '{}' sees {}", dest.host, fmt::join(seen, ", ")));
    else if (o.shallow)
      checks.pass("backing", "no disk has a backing file: --shallow copies whole images");
  }
  if (!no_dir.empty())
    checks.fail("disks",
                fmt::format("host '{}' has no directory {}", dest.host, fmt::join(no_dir, ", ")));
  if (!dest_unknown.empty())
    checks.fail("disks", fmt::format("cannot check: {}", fmt::join(dest_unknown, "; ")));
  if (!exist.empty())
    checks.fail("disks", fmt::format("host '{}' already has {} (--force replaces)", dest.host,
                                     fmt::join(exist, ", ")));
  if (!itself.empty())
    checks.fail("disks", fmt::format("on host '{}', {}: a disk is never copied onto itself",
                                     dest.host, fmt::join(itself, "; ")));
  if (!in_use.empty())
    checks.fail("replace",
                fmt::format("--force never replaces a file a defined VM uses: on host '{}', {}",
                            dest.host, fmt::join(in_use, "; ")));
  else if (!replaced.empty())
    checks.warn("replace",
                fmt::format("--force replaces {} on host '{}': no defined VM on the hosts that "
                            "see it uses it, and it is no file of this VM",
                            fmt::join(replaced, ", "), dest.host));
  if (plan.live.copies.empty())
    checks.pass("disks", fmt::format("every disk stays on shared storage ({})",
                                     join_or(
                                         [&] {
                                           std::vector<std::string> v;
                                           for (const auto& [t, p] : plan.live.shared)
                                             v.push_back(t + " " + p);
                                           return v;
                                         }(),
                                         "no disk")));
  else if (no_dir.empty() && exist.empty() && itself.empty() && dest_unknown.empty())
    checks.pass(
        "disks", fmt::format("copied to host '{}': {}", dest.host, [&] {
          std::vector<std::string> v;
          for (const auto& m : plan.live.copies)
            v.push_back(fmt::format("{} -> {} ({})", m.target, m.dest, human_bytes(m.need)));
          return fmt::format("{}", fmt::join(v, ", "));
        }()));

  // ---- space
  for (const auto& [dir, need] : need_per_dir) {
    std::optional<std::uint64_t> free = dest.storage->free_bytes(dir);
    std::uint64_t want_bytes = need + need / 20 + (16u << 20);
    std::string disks = fmt::format("{}", fmt::join(disks_per_dir[dir], ", "));
    if (!free)
      checks.warn("space", fmt::format("free space in {} on host '{}' is unknown; {} needed for {}",
                                       dir, dest.host, human_bytes(want_bytes), disks));
    else if (*free < want_bytes)
      checks.fail("space", fmt::format("{} on host '{}' has {} free; {} needs {} ({} of allocated "
                                       "data and a margin)",
                                       dir, dest.host, human_bytes(*free), disks,
                                       human_bytes(want_bytes), human_bytes(need)));
    else
      checks.pass("space", fmt::format("{} on host '{}': {} free, {} needed for {}", dir, dest.host,
                                       human_bytes(*free), human_bytes(want_bytes), disks));
  }

  // ---- prediction
  plan.live.link_bytes_per_s = link.bytes_per_s;
  if (type == "qsm" || type == "quick") {
    migrate::QuickInput in;
    in.ram_bytes = d.memory_bytes;
    for (const auto& m : plan.live.copies) in.disk_bytes += m.need;
    in.disk_write_bytes_per_s = g.disk_write_bytes_per_s.value_or(0);
    in.link_bytes_per_s = link.bytes_per_s;
    if (o.bandwidth > 0)
      in.link_bytes_per_s = std::min(in.link_bytes_per_s, static_cast<double>(o.bandwidth));
    in.pause_link_bytes_per_s = link.bytes_per_s;
    in.other_host = !same_host;
    in.copies = type == "qsm";
    plan.live.prediction = migrate::predict_quick(in);
  } else if (type == "network") {
    std::uint64_t bytes = 0;
    for (const auto& m : plan.live.copies) bytes += m.need;
    double rate = o.bandwidth > 0 ? std::min(link.bytes_per_s, static_cast<double>(o.bandwidth))
                                  : link.bytes_per_s;
    plan.live.prediction.disk_time = std::chrono::milliseconds(
        static_cast<std::int64_t>(1000.0 * static_cast<double>(bytes) / std::max(rate, 1.0)));
    // The VM is off the whole time: its outage is the whole move.
    plan.live.prediction.total = plan.live.prediction.disk_time + migrate::kMigrationSetup;
    plan.live.prediction.pause = plan.live.prediction.total;
  } else if (running(g.state)) {
    migrate::LiveInput in;
    in.ram_bytes = d.memory_bytes;
    for (const auto& m : plan.live.copies) in.disk_bytes += m.need;
    in.dirty_bytes_per_s = g.dirty_bytes_per_s.value_or(0);
    in.disk_write_bytes_per_s = g.disk_write_bytes_per_s.value_or(0);
    in.link_bytes_per_s = link.bytes_per_s;
    if (o.bandwidth > 0)
      in.link_bytes_per_s = std::min(in.link_bytes_per_s, static_cast<double>(o.bandwidth));
    if (o.max_downtime.count() > 0) in.max_downtime = o.max_downtime;
    plan.live.prediction = migrate::predict_live(in);
    if (!plan.live.prediction.converges && !o.auto_converge && !o.postcopy &&
        o.timeout_action != "suspend")
      checks.warn("convergence",
                  fmt::format("the guest dirties {}/s, the link carries {}/s: it would not "
                              "converge; use --auto-converge, --timeout-action suspend, or "
                              "more --bandwidth",
                              human_bytes(static_cast<std::uint64_t>(in.dirty_bytes_per_s)),
                              human_bytes(static_cast<std::uint64_t>(in.link_bytes_per_s))));
    if (d.virt_type == "qemu")
      checks.warn("tcg",
                  "the guest runs under TCG (software emulation): in the lab, QEMU 7.2 lost "
                  "memory writes of TCG guests that wrote to their memory during a live "
                  "migration, and some crashed on the destination (about 1 in 45 fast "
                  "migrations, 10 of 15 slow ones; plain virsh migrate too): the less the guest "
                  "writes and the faster the link, the safer");
    if (!g.dirty_bytes_per_s)
      plan.notes.push_back(
          fmt::format("the guest's dirty rate is unknown ({}): the prediction "
                      "assumes an idle guest",
                      g.measure_note.empty() ? "not measured" : g.measure_note));
  }
  plan.checks = checks.take();
  return plan;
}

Rating rate_plan(const MigrationPlan& plan, const DestView& dest, std::uint64_t memory_bytes,
                 std::int64_t fastest_ms) {
  Rating r;
  if (!plan.ok()) {
    r.reason = fmt::format("cannot: {}", fmt::join(plan.failures(), "; "));
    return r;
  }
  r.stars = 5;
  std::vector<std::string> why;
  for (const auto& c : plan.checks) {
    if (c.status == CheckStatus::kWarn) {
      --r.stars;
      why.push_back(fmt::format("{}: {}", c.name, c.reason));
    }
  }
  std::uint64_t left = dest.free_memory > memory_bytes ? dest.free_memory - memory_bytes : 0;
  if (left < std::max<std::uint64_t>(dest.free_memory / 4, 512ull << 20)) {
    --r.stars;
    why.push_back(fmt::format("{} of memory left afterwards", human_bytes(left)));
  }
  std::int64_t predicted = plan.live.prediction.total.count();
  if (fastest_ms > 0 && predicted > 2 * fastest_ms) {
    --r.stars;
    why.push_back(fmt::format("slower: about {:.1f} s against {:.1f} s", predicted / 1000.0,
                              fastest_ms / 1000.0));
  }
  r.stars = std::max(r.stars, 1);
  if (why.empty())
    why.push_back(fmt::format("{}, {} free memory, about {:.1f} s", plan.type,
                              human_bytes(dest.free_memory), predicted / 1000.0));
  r.reason = fmt::format("{}", fmt::join(why, "; "));
  return r;
}

}  // namespace vmshift::core
