// The planner's rules: no I/O here (no Storage, Connection or Guest call);
// what the hosts said comes in the Facts (core/preflight).
#include "core/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "base/bandwidth.h"
#include "base/format.h"
#include "hosts/libvirt_storage.h"
#include "hosts/xml.h"
#include "migrate/quick_migration.h"

namespace vmshift::core {
namespace {

using migrate::DiskMove;
using migrate::Kind;
using migrate::kind_name;

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
  std::vector<Check> take() { return std::move(v_); }

 private:
  std::vector<Check> v_;
};

// What a kind of transfer does, as the rules below need it.
bool moves_live(Kind k) { return k == Kind::kLive || k == Kind::kLiveVsm; }  // memory, VM runs
bool saves_and_restores(Kind k) { return k == Kind::kQsm || k == Kind::kQuick; }
bool copies_disks(Kind k) { return k == Kind::kLiveVsm || k == Kind::kNetwork || k == Kind::kQsm; }
// Each copy takes the disk's own file; its backing chain stays.
bool copies_top_layer(Kind k) { return k == Kind::kQsm || k == Kind::kNetwork; }
// Leaves behind what lives outside the disks (NVRAM, vTPM state).
bool copies_only_disks(Kind k) { return saves_and_restores(k) || k == Kind::kNetwork; }

std::string kind_names(const std::vector<Kind>& kinds) {
  std::vector<std::string_view> names;
  for (Kind k : kinds) names.push_back(kind_name(k));
  return fmt::format("{}", fmt::join(names, ", "));
}

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

const std::vector<Kind>& transfer_kinds() {
  static const std::vector<Kind> kinds = {Kind::kLive, Kind::kLiveVsm, Kind::kQuick, Kind::kQsm,
                                          Kind::kNetwork};
  return kinds;
}

bool transfer_kind(Kind kind) {
  const std::vector<Kind>& v = transfer_kinds();
  return std::find(v.begin(), v.end(), kind) != v.end();
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

FileProbe FileFacts::file(const std::string& path) const {
  auto it = files.find(path);
  if (it == files.end()) return {false, fmt::format("'{}' was not looked at", path)};
  return it->second;
}

DirProbe FileFacts::dir(const std::string& d) const {
  auto it = dirs.find(d);
  if (it == dirs.end()) return {std::nullopt, fmt::format("'{}' was not looked at", d)};
  return it->second;
}

SameFileProbe FileFacts::same_file(const std::string& a, const std::string& b) const {
  auto it = same.find({a, b});
  if (it == same.end()) return {false, fmt::format("whether '{}' is '{}' was not looked at", a, b)};
  return it->second;
}

IdentityProbe FileFacts::identity(const std::string& path) const {
  auto it = identities.find(path);
  if (it == identities.end()) return {std::nullopt, fmt::format("'{}' was not looked at", path)};
  return it->second;
}

Layout lay_out(const Facts& f) {
  Layout l;
  Checks checks;
  const migrate::LiveMigrationOptions& o = f.request.options;
  const GuestView& g = f.guest;
  const DestView& dest = f.dest;
  l.running = running(g.state);
  l.same_host = dest.host == f.request.source_host;

  // ---- which type
  l.moving = o.storage.has_value() || !o.disks.empty();
  for (const auto& pd : g.disks) {
    if (pd.info.path.empty()) continue;
    if (!pd.location || !pd.location->shared || !sees(*pd.location, dest.host))
      l.local.push_back(fmt::format(
          "{} ({})", pd.info.target,
          pd.location ? fmt::format("on {}", pd.location->name) : "not in the inventory"));
  }
  const std::vector<std::string>& local = l.local;
  bool moving = l.moving;
  Kind type = Kind::kLive;
  std::string why;
  if (l.running) {
    if (!local.empty()) {
      type = Kind::kLiveVsm;
      why = fmt::format(
          "the VM is {} and disk{} {} must be copied: memory and disks move "
          "together (live VM-and-storage migration)",
          g.state, local.size() == 1 ? "" : "s", fmt::join(local, ", "));
    } else if (moving) {
      type = Kind::kLiveVsm;
      why = fmt::format("the VM is {} and its disks are asked to move (--storage/--disk)", g.state);
    } else {
      type = Kind::kLive;
      why = fmt::format(
          "the VM is {} and every disk is on storage host '{}' shares: only memory "
          "and device state move",
          g.state, dest.host);
    }
  } else if (g.state == "shut off") {
    type = Kind::kNetwork;
    why =
        "the VM is shut off: its disks and definition are copied to the destination (network "
        "migration)";
  } else {
    type = Kind::kLive;
    why = fmt::format("the VM is {}", g.state);
    checks.fail("state", fmt::format("the VM is {}: vmshift moves running, paused or shut-off "
                                     "VMs",
                                     g.state));
  }
  if (o.type) {
    Kind forced = *o.type;
    if (!transfer_kind(forced)) {
      checks.fail("type", fmt::format("unknown transfer type '{}' (known: {})", kind_name(forced),
                                      kind_names(transfer_kinds())));
    } else if (moves_live(forced) && !l.running) {
      checks.fail("type", fmt::format("--type {} needs a running VM; the VM is {} (it would "
                                      "be a network migration)",
                                      kind_name(forced), g.state));
    } else if (forced == Kind::kLive && (!local.empty() || moving)) {
      checks.fail("type",
                  !local.empty()
                      ? fmt::format("--type live keeps the disks where they are, but host '{}' "
                                    "does not see {}: use --type live-vsm, which copies them",
                                    dest.host, fmt::join(local, ", "))
                      : "--type live moves no disks, but --storage/--disk asks to move them");
    } else if (saves_and_restores(forced) && !l.running) {
      checks.fail("type", fmt::format("--type {} needs a running VM; the VM is {} (it would "
                                      "be a network migration)",
                                      kind_name(forced), g.state));
    } else if (forced == Kind::kQuick && (!local.empty() || moving)) {
      // Without shared storage a quick migration becomes a QSM.
      type = Kind::kQsm;
      why = fmt::format(
          "--type quick, but {}: without shared storage a quick migration is a "
          "quick storage migration (qsm)",
          !local.empty()
              ? fmt::format("host '{}' does not see {}", dest.host, fmt::join(local, ", "))
              : std::string("the disks are asked to move"));
    } else if (forced == Kind::kNetwork && l.running) {
      checks.fail("type", fmt::format("--type network moves a stopped VM; the VM is {}: shut it "
                                      "down first, or use live or live-vsm",
                                      g.state));
    } else {
      if (forced != type)
        why = fmt::format("--type {} (the automatic choice would be {})", kind_name(forced),
                          kind_name(type));
      type = forced;
    }
  }
  l.type = type;
  l.why = why;
  l.type_checks = checks.take();

  // ---- disks: which are copied, and where they go
  bool copies = copies_disks(type);
  // QSM and network migrations copy each disk's own file; its backing chain
  // (if any) must be on the destination already, as with --shallow.
  l.top_only = o.shallow || copies_top_layer(type);
  std::map<std::string, std::string> asked;
  for (const auto& [t, p] : o.disks) asked[t] = p;
  if (o.storage)
    for (const auto& s : f.inventory.storage())
      if (s.name == *o.storage) l.into = s;
  for (const auto& pd : g.disks) {
    const guest::DiskInfo& di = pd.info;
    if (di.path.empty()) continue;
    bool shared = pd.location && pd.location->shared && sees(*pd.location, dest.host);
    std::string dest_path = di.path;
    if (auto it = asked.find(di.target); it != asked.end() && !it->second.empty())
      dest_path = it->second;
    else if (l.into)
      dest_path = l.into->path + "/" + hosts::basename_of(di.path);
    bool copy = copies && (!shared || dest_path != di.path);
    if (!copy) {
      l.shared[di.target] = di.path;
      continue;
    }
    DiskMove m = migrate::move_of(di, dest_path);
    // The whole chain becomes one image, unless only the top layer moves.
    m.need = di.allocation + (l.top_only ? 0 : pd.chain_allocation);
    l.copies.push_back(m);
  }
  // The VM's own files that the destination sees: on its own host, or on
  // storage the inventory says both hosts share (the same path names the
  // same file there).
  for (const auto& pd : g.disks) {
    std::vector<std::string> files;
    if (!pd.info.path.empty()) files.push_back(pd.info.path);
    files.insert(files.end(), pd.info.backing.begin(), pd.info.backing.end());
    for (const auto& file : files) {
      std::optional<hosts::StorageConfig> at = f.inventory.storage_for(f.request.source_host, file);
      if (l.same_host || (at && at->shared && sees(*at, dest.host))) l.own_seen.push_back(file);
    }
  }
  return l;
}

namespace {

bool quick_kind(const Layout& l) { return saves_and_restores(l.type); }

// A live or live-vsm plan of a running VM: predicted by the pre-copy model.
bool live_prediction(const Layout& l) { return moves_live(l.type) && l.running; }

// Where QSM and quick migrations keep the VM's saved state on the
// destination: next to its disks (on the shared storage for quick); "" if
// it has none there.
std::string saved_state_dir(const Layout& l) {
  if (l.type == Kind::kQsm && !l.copies.empty()) return hosts::dirname_of(l.copies.front().dest);
  return l.shared.empty() ? std::string() : hosts::dirname_of(l.shared.begin()->second);
}

}  // namespace

std::vector<MadeFile> files_made(const Facts& f, const Layout& l) {
  std::vector<MadeFile> made;
  if (!l.running || !quick_kind(l)) return made;
  const std::string& vm = f.guest.domain.name;
  std::string state_dir;
  if (l.type == Kind::kQsm && !l.copies.empty()) {
    state_dir = hosts::dirname_of(l.copies.front().source);
    for (const auto& m : l.copies) {
      made.push_back({true, migrate::overlay_path(m.source)});
      if (!l.same_host)
        made.push_back({false, hosts::dirname_of(m.dest) + "/" +
                                   hosts::basename_of(migrate::overlay_path(m.source))});
    }
    if (!l.same_host)
      made.push_back({false, migrate::state_path(hosts::dirname_of(l.copies.front().dest), vm)});
  } else if (!l.shared.empty()) {
    state_dir = hosts::dirname_of(l.shared.begin()->second);
  }
  if (!state_dir.empty()) made.push_back({true, migrate::state_path(state_dir, vm)});
  return made;
}

CopyTargets assess_copies(const Facts& f, const Layout& l) {
  CopyTargets t;
  const migrate::LiveMigrationOptions& o = f.request.options;
  const FileFacts& files = f.dest_files;
  t.copies = l.copies;
  for (auto& m : t.copies) {
    std::string dir = hosts::dirname_of(m.dest);
    if (!files.dir(dir).error.empty()) {
      t.no_dir.push_back(fmt::format("{} for disk {}", dir, m.target));
      continue;
    }
    FileProbe probe = files.file(m.dest);
    if (!probe.error.empty()) {
      t.unknown.push_back(probe.error);
      continue;
    }
    bool there = probe.exists;
    // Never onto a file of the move itself, with or without --force.
    std::string own;
    for (const auto& file : l.own_seen) {
      bool same = file == m.dest;
      if (!same && there) {
        SameFileProbe sp = files.same_file(file, m.dest);
        same = sp.same || !sp.error.empty();  // cannot tell: never replace it
      }
      if (same) own = file;
    }
    if (!own.empty()) {
      t.itself.push_back(
          fmt::format("{} (disk {}) is the disk's own file{}", m.dest, m.target,
                      own == m.dest ? "" : fmt::format(" '{}' (through a link)", own)));
      continue;
    }
    if (there) {
      if (!o.force) {
        t.exist.push_back(fmt::format("{} (disk {})", m.dest, m.target));
      } else if (!f.dest.in_use_error.empty()) {
        t.in_use.push_back(fmt::format("{} (disk {}): which VMs use it cannot be checked: {}",
                                       m.dest, m.target, f.dest.in_use_error));
      } else if (auto it = f.dest.in_use.find(m.dest); it != f.dest.in_use.end()) {
        t.in_use.push_back(fmt::format("{} (disk {}): {} uses it", m.dest, m.target, it->second));
      } else {
        IdentityProbe id = files.identity(m.dest);
        if (!id.error.empty()) {
          t.in_use.push_back(
              fmt::format("{} (disk {}): it cannot be looked at: {}", m.dest, m.target, id.error));
        } else {
          m.replace_existing = true;
          m.replaces = id.identity;
          t.replaced.push_back(m.dest);
        }
      }
    }
    t.need_per_dir[dir] += m.need;
    t.disks_per_dir[dir].push_back(m.target);
  }
  // QSM and quick migrations keep the VM's saved state (up to its memory)
  // next to its disks on the destination (on the shared storage for quick).
  if (l.running && quick_kind(l)) {
    if (std::string dir = saved_state_dir(l); !dir.empty()) {
      t.need_per_dir[dir] += f.guest.domain.memory_bytes;
      t.disks_per_dir[dir].push_back("the saved state");
    }
  }
  return t;
}

Probes files_to_probe(const Facts& f) {
  Probes p;
  if (!f.dest.error.empty()) return p;
  Layout l = lay_out(f);
  const hosts::DomainFacts& d = f.guest.domain;
  p.dest.files.insert(d.files.begin(), d.files.end());
  p.dest.dirs.insert(d.file_dirs.begin(), d.file_dirs.end());
  for (const auto& [target, path] : l.shared) p.dest.files.insert(path);
  for (const auto& m : l.copies) {
    p.dest.dirs.insert(hosts::dirname_of(m.dest));
    p.dest.files.insert(m.dest);
    for (const auto& file : l.own_seen)
      if (file != m.dest) p.dest.same.insert({file, m.dest});
    if (f.request.options.force) p.dest.identities.insert(m.dest);
    if (l.top_only) p.dest.files.insert(m.backing.begin(), m.backing.end());
  }
  for (const auto& made : files_made(f, l))
    (made.on_source ? p.source : p.dest).files.insert(made.path);
  if (l.running && quick_kind(l))
    if (std::string dir = saved_state_dir(l); !dir.empty()) p.dest.dirs.insert(dir);
  return p;
}

std::vector<Check> check_type(const Facts&, const Layout& l) {
  std::vector<Check> v = l.type_checks;
  if (!transfer_kind(l.type))
    v.push_back({"type", CheckStatus::kFail,
                 fmt::format("{} migration is not available in this version of vmshift",
                             kind_name(l.type))});
  return v;
}

std::vector<Check> check_destination(const Facts& f, const Layout& l) {
  Checks checks;
  const DestView& dest = f.dest;
  // On its own host a VM's storage can move by QSM or network migration.
  if (!dest.error.empty())
    checks.fail("destination", dest.error);
  else if (l.same_host && !((l.type == Kind::kQsm || l.type == Kind::kNetwork) && l.moving))
    checks.fail("destination", fmt::format("the VM is already on host '{}' (to move its disks "
                                           "on the same host: vmshift move-storage, or --type "
                                           "qsm with --storage or --disk)",
                                           dest.host));
  else
    checks.pass("destination",
                l.same_host ? fmt::format("the VM stays on host '{}'; its disks move", dest.host)
                            : fmt::format("host '{}' answers", dest.host));
  return checks.take();
}

std::vector<Check> check_name(const Facts& f, const Layout& l) {
  Checks checks;
  const DestView& dest = f.dest;
  const hosts::DomainFacts& d = f.guest.domain;
  if (l.same_host)
    checks.pass("name", "the VM keeps its definition");
  else if (contains(dest.domain_names, d.name))
    checks.fail("name", fmt::format("host '{}' already has a VM named '{}'", dest.host, d.name));
  else if (!d.uuid.empty() && contains(dest.domain_uuids, d.uuid))
    checks.fail("name", fmt::format("host '{}' already has a VM with UUID {}", dest.host, d.uuid));
  else
    checks.pass("name",
                fmt::format("no VM named '{}' or with its UUID on host '{}'", d.name, dest.host));
  return checks.take();
}

std::vector<Check> check_cpu(const Facts& f, const Layout&) {
  return {check_cpu(f.guest.domain, f.dest)};
}

std::vector<Check> check_machine(const Facts& f, const Layout&) {
  Checks checks;
  const hosts::DomainFacts& d = f.guest.domain;
  if (!f.dest.domcaps_error.empty())
    checks.fail("machine", f.dest.domcaps_error);
  else
    checks.pass("machine", fmt::format("host '{}' runs {} guests of machine type {} with {}",
                                       f.dest.host, d.virt_type, d.machine, d.emulator));
  return checks.take();
}

std::vector<Check> check_memory(const Facts& f, const Layout& l) {
  Checks checks;
  const DestView& dest = f.dest;
  const hosts::DomainFacts& d = f.guest.domain;
  std::uint64_t want = d.memory_bytes + kMemoryMargin;
  if (l.same_host)
    checks.pass("memory", "the VM stays on its host");
  else if (!l.running)
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
  return checks.take();
}

// TCG: QEMU 7.2 under TCG loses memory writes of a guest during a
// migration, the more the longer it runs: guests crashed on the
// destination in 10 of 15 slow lab migrations (post-copy, or a pause
// after many passes), plain `virsh migrate` included
// (docs/live-migration.md). The options made for migrations that do not
// converge are refused there.
std::vector<Check> check_tcg(const Facts& f, const Layout& l) {
  Checks checks;
  const migrate::LiveMigrationOptions& o = f.request.options;
  bool live = moves_live(l.type);
  if (live && l.running && f.guest.domain.virt_type == "qemu") {
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
  return checks.take();
}

std::vector<Check> check_postcopy(const Facts& f, const Layout& l) {
  Checks checks;
  if (f.request.options.postcopy && l.running && f.guest.domain.virt_type != "qemu")
    checks.pass("postcopy",
                "allowed: the VM may switch to the destination before all of its "
                "memory has arrived (a network failure then loses the VM)");
  return checks.take();
}

std::vector<Check> check_compress(const Facts& f, const Layout&) {
  Checks checks;
  const migrate::LiveMigrationOptions& o = f.request.options;
  unsigned long version = f.guest.source_libvirt_version;
  if (o.compress.empty()) return checks.take();
  if (o.compress == "zstd" && version < 9004000)
    checks.fail("compress",
                fmt::format("zstd over multifd needs libvirt 9.4 or newer on host '{}' (it has "
                            "{}.{}.{}): use --compress xbzrle or --compress mt",
                            f.request.source_host, version / 1000000, version / 1000 % 1000,
                            version % 1000));
  else
    checks.pass("compress",
                fmt::format("memory compressed with {}{}", o.compress,
                            o.parallel > 0 || o.compress == "zstd"
                                ? fmt::format(" over {} connections", std::max(o.parallel, 2))
                                : ""));
  return checks.take();
}

// libvirt limits a migration in whole MiB/s only: a rate it cannot take is
// refused here, never rounded (copies vmshift paces itself take any rate).
std::vector<Check> check_bandwidth(const Facts& f, const Layout& l) {
  Checks checks;
  const migrate::LiveMigrationOptions& o = f.request.options;
  bool live = moves_live(l.type);
  if (live && o.bandwidth > 0 && !whole_mib_per_s(o.bandwidth))
    checks.fail("bandwidth",
                fmt::format("--bandwidth {} MiB/s: libvirt limits a {} migration in whole MiB/s "
                            "only; give a whole number",
                            static_cast<double>(o.bandwidth) / static_cast<double>(kBytesPerMiB),
                            kind_name(l.type)));
  return checks.take();
}

std::vector<Check> check_devices(const Facts& f, const Layout&) {
  Checks checks;
  const hosts::DomainFacts& d = f.guest.domain;
  if (!d.blockers.empty())
    checks.fail("devices", fmt::format("{}", fmt::join(d.blockers, "; ")));
  else
    checks.pass("devices", "no device that prevents migration");
  return checks.take();
}

std::vector<Check> check_networks(const Facts& f, const Layout&) {
  Checks checks;
  const DestView& dest = f.dest;
  const hosts::DomainFacts& d = f.guest.domain;
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
    checks.fail("networks", fmt::format("host '{}' lacks {}{}", dest.host, join_or(missing, ""),
                                        inactive.empty() ? ""
                                                         : fmt::format("{}inactive: {}",
                                                                       missing.empty() ? "" : "; ",
                                                                       fmt::join(inactive, ", "))));
  else if (!unknown.empty())
    checks.warn("networks", fmt::format("host '{}' cannot list its interfaces; make sure it "
                                        "has {}",
                                        dest.host, fmt::join(unknown, ", ")));
  else
    checks.pass("networks", d.networks.empty() && devs.empty()
                                ? "the VM has no network interface to connect"
                                : fmt::format("host '{}' has {}", dest.host, join_or(seen, "")));
  return checks.take();
}

// Firmware state: QSM, quick and network migrations copy the disks (and
// the saved state), not the NVRAM file or the vTPM's state, which would
// stay behind on the source (and libvirt would start the VM there with
// fresh ones). A live migration carries both in its stream.
std::vector<Check> check_firmware(const Facts& f, const Layout& l) {
  Checks checks;
  const hosts::DomainFacts& d = f.guest.domain;
  if (copies_only_disks(l.type) && (!d.nvram.empty() || d.tpm_state)) {
    std::vector<std::string> kept;
    if (!d.nvram.empty()) kept.push_back(fmt::format("NVRAM {}", d.nvram));
    if (d.tpm_state) kept.push_back("vTPM state (swtpm)");
    if (l.same_host)
      checks.pass("firmware", fmt::format("the VM stays on host '{}' with its {}", f.dest.host,
                                          fmt::join(kept, " and ")));
    else
      checks.fail("firmware",
                  fmt::format("the VM keeps its {} on host '{}', and a {} migration does not "
                              "copy firmware state: refused rather than leave it behind{}",
                              fmt::join(kept, " and "), f.request.source_host, kind_name(l.type),
                              l.running ? " (a live migration carries it: --type live "
                                          "or live-vsm)"
                                        : ""));
  }
  return checks.take();
}

// Other files (kernel, firmware, CD-ROM images, log directories).
std::vector<Check> check_files(const Facts& f, const Layout&) {
  Checks checks;
  const hosts::DomainFacts& d = f.guest.domain;
  std::vector<std::string> missing, unknown;
  for (const auto& file : d.files) {
    FileProbe p = f.dest_files.file(file);
    if (!p.error.empty())
      unknown.push_back(p.error);
    else if (!p.exists)
      missing.push_back(file);
  }
  for (const auto& dir : d.file_dirs)
    if (!f.dest_files.dir(dir).error.empty()) missing.push_back(dir + "/");
  if (!unknown.empty())
    checks.fail("files", fmt::format("cannot check: {}", fmt::join(unknown, "; ")));
  else if (!missing.empty())
    checks.fail("files", fmt::format("host '{}' lacks {} (a running VM's other files are not "
                                     "copied)",
                                     f.dest.host, fmt::join(missing, ", ")));
  else
    checks.pass("files",
                d.files.empty() && d.file_dirs.empty()
                    ? "no other file needed"
                    : fmt::format("host '{}' has {}", f.dest.host,
                                  fmt::join(d.files.empty() ? d.file_dirs : d.files, ", ")));
  return checks.take();
}

std::vector<Check> check_requested(const Facts& f, const Layout& l) {
  Checks checks;
  const migrate::LiveMigrationOptions& o = f.request.options;
  if (o.storage) {
    if (!l.into)
      checks.fail("storage", fmt::format("no storage location '{}' in the inventory", *o.storage));
    else if (!sees(*l.into, f.dest.host))
      checks.fail("storage",
                  fmt::format("host '{}' does not see storage '{}' (it is on: {})", f.dest.host,
                              l.into->name, fmt::join(l.into->hosts, ", ")));
  }
  std::map<std::string, std::string> asked;
  for (const auto& [t, p] : o.disks) asked[t] = p;
  for (const auto& [t, p] : asked) {
    bool known = std::any_of(f.guest.disks.begin(), f.guest.disks.end(),
                             [&](const PlanDisk& pd) { return pd.info.target == t; });
    if (!known) checks.fail("disks", fmt::format("the VM has no disk '{}'", t));
    if (!p.empty() && p.front() != '/')
      checks.fail("disks",
                  fmt::format("destination '{}' of disk {} must be an absolute path", p, t));
  }
  return checks.take();
}

// Disks two QEMUs open at once during the switch-over must not be cached
// by the host: the destination would read what the source has not written.
std::vector<Check> check_cache(const Facts& f, const Layout& l) {
  Checks checks;
  const hosts::DomainFacts& d = f.guest.domain;
  bool live = moves_live(l.type);
  if (!live || !l.running) return checks.take();
  std::vector<std::string> cached;
  for (const auto& [target, path] : l.shared) {
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
  return checks.take();
}

std::vector<Check> check_shared_disks(const Facts& f, const Layout& l) {
  Checks checks;
  std::vector<std::string> unseen;   // shared disks the destination should see but does not
  std::vector<std::string> unknown;  // probes that failed
  for (const auto& [target, path] : l.shared) {
    FileProbe p = f.dest_files.file(path);
    if (!p.error.empty())
      unknown.push_back(p.error);
    else if (!p.exists)
      unseen.push_back(fmt::format("{} ({})", path, target));
  }
  if (!unknown.empty())
    checks.fail("storage", fmt::format("cannot check: {}", fmt::join(unknown, "; ")));
  if (!unseen.empty())
    checks.fail("storage", fmt::format("host '{}' does not see {}: the inventory says the "
                                       "storage is shared, but the files are not there",
                                       f.dest.host, fmt::join(unseen, ", ")));
  return checks.take();
}

// Files QSM and quick migrations make must not be there already (a
// leftover of an interrupted run): libvirt would refuse, and vmshift never
// deletes what it did not make.
std::vector<Check> check_leftovers(const Facts& f, const Layout& l) {
  Checks checks;
  std::vector<std::string> there, unknown;
  for (const auto& made : files_made(f, l)) {
    FileProbe p = (made.on_source ? f.source_files : f.dest_files).file(made.path);
    if (!p.error.empty())
      unknown.push_back(p.error);
    else if (p.exists)
      there.push_back(made.path);
  }
  if (!unknown.empty())
    checks.fail("leftovers", fmt::format("cannot check: {}", fmt::join(unknown, "; ")));
  if (!there.empty())
    checks.fail("leftovers", fmt::format("{} already exist{} (left by an interrupted run?): "
                                         "check and remove {}",
                                         fmt::join(there, ", "), there.size() == 1 ? "s" : "",
                                         there.size() == 1 ? "it" : "them"));
  return checks.take();
}

std::vector<Check> check_saved_state(const Facts&, const Layout& l) {
  Checks checks;
  if (l.running && l.type == Kind::kQuick && saved_state_dir(l).empty())
    checks.fail("storage",
                "a quick migration saves the state to storage both hosts share, "
                "and the VM has no disk on any");
  return checks.take();
}

// --shallow: the copies' top layers sit on the same backing chain, which
// the destination must see at the same paths.
std::vector<Check> check_backing(const Facts& f, const Layout& l) {
  Checks checks;
  if (!l.top_only) return checks.take();
  const migrate::LiveMigrationOptions& o = f.request.options;
  std::vector<std::string> lacking, seen, unknown;
  for (const auto& m : l.copies)
    for (const auto& b : m.backing) {
      FileProbe p = f.dest_files.file(b);
      if (!p.error.empty()) {
        unknown.push_back(p.error);
        continue;
      }
      (p.exists ? seen : lacking).push_back(fmt::format("{} (disk {})", b, m.target));
    }
  std::string how =
      o.shallow ? std::string("--shallow copies only the top layer")
                : fmt::format("a {} migration copies each disk's own file", kind_name(l.type));
  if (!unknown.empty())
    checks.fail("backing", fmt::format("cannot check: {}", fmt::join(unknown, "; ")));
  else if (!lacking.empty())
    checks.fail("backing",
                fmt::format("{}, but host '{}' lacks the backing file{} {}", how, f.dest.host,
                            lacking.size() == 1 ? "" : "s", fmt::join(lacking, ", ")));
  else if (!seen.empty())
    checks.pass("backing", fmt::format("host '{}' sees {}", f.dest.host, fmt::join(seen, ", ")));
  else if (o.shallow)
    checks.pass("backing", "no disk has a backing file: --shallow copies whole images");
  return checks.take();
}

std::vector<Check> check_disks(const Facts& f, const Layout& l, const CopyTargets& t) {
  Checks checks;
  const std::string& host = f.dest.host;
  if (!t.no_dir.empty())
    checks.fail("disks",
                fmt::format("host '{}' has no directory {}", host, fmt::join(t.no_dir, ", ")));
  if (!t.unknown.empty())
    checks.fail("disks", fmt::format("cannot check: {}", fmt::join(t.unknown, "; ")));
  if (!t.exist.empty())
    checks.fail("disks", fmt::format("host '{}' already has {} (--force replaces)", host,
                                     fmt::join(t.exist, ", ")));
  if (!t.itself.empty())
    checks.fail("disks", fmt::format("on host '{}', {}: a disk is never copied onto itself", host,
                                     fmt::join(t.itself, "; ")));
  if (t.copies.empty()) {
    std::vector<std::string> v;
    for (const auto& [target, path] : l.shared) v.push_back(target + " " + path);
    checks.pass("disks",
                fmt::format("every disk stays on shared storage ({})", join_or(v, "no disk")));
  } else if (t.no_dir.empty() && t.exist.empty() && t.itself.empty() && t.unknown.empty()) {
    std::vector<std::string> v;
    for (const auto& m : t.copies)
      v.push_back(fmt::format("{} -> {} ({})", m.target, m.dest, human_bytes(m.need)));
    checks.pass("disks", fmt::format("copied to host '{}': {}", host, fmt::join(v, ", ")));
  }
  return checks.take();
}

std::vector<Check> check_replace(const Facts& f, const Layout&, const CopyTargets& t) {
  Checks checks;
  if (!t.in_use.empty())
    checks.fail("replace",
                fmt::format("--force never replaces a file a defined VM uses: on host '{}', {}",
                            f.dest.host, fmt::join(t.in_use, "; ")));
  else if (!t.replaced.empty())
    checks.warn("replace",
                fmt::format("--force replaces {} on host '{}': no defined VM on the hosts that "
                            "see it uses it, and it is no file of this VM",
                            fmt::join(t.replaced, ", "), f.dest.host));
  return checks.take();
}

std::vector<Check> check_space(const Facts& f, const Layout&, const CopyTargets& t) {
  Checks checks;
  const std::string& host = f.dest.host;
  for (const auto& [dir, need] : t.need_per_dir) {
    DirProbe probe = f.dest_files.dir(dir);
    std::uint64_t want_bytes = need + need / 20 + (16u << 20);
    std::string disks = fmt::format("{}", fmt::join(t.disks_per_dir.at(dir), ", "));
    if (!probe.error.empty())
      checks.fail("space", fmt::format("cannot check: {}", probe.error));
    else if (!probe.free_bytes)
      checks.warn("space", fmt::format("free space in {} on host '{}' is unknown; {} needed for {}",
                                       dir, host, human_bytes(want_bytes), disks));
    else if (*probe.free_bytes < want_bytes)
      checks.fail("space", fmt::format("{} on host '{}' has {} free; {} needs {} ({} of allocated "
                                       "data and a margin)",
                                       dir, host, human_bytes(*probe.free_bytes), disks,
                                       human_bytes(want_bytes), human_bytes(need)));
    else
      checks.pass("space",
                  fmt::format("{} on host '{}': {} free, {} needed for {}", dir, host,
                              human_bytes(*probe.free_bytes), human_bytes(want_bytes), disks));
  }
  return checks.take();
}

migrate::Prediction predict_plan(const Facts& f, const Layout& l,
                                 const std::vector<migrate::DiskMove>& copies) {
  const migrate::LiveMigrationOptions& o = f.request.options;
  if (moves_live(l.type) && !l.running) return {};
  migrate::TransferInput in;
  in.type = l.type;
  in.ram_bytes = f.guest.domain.memory_bytes;
  for (const auto& m : copies) in.disk_bytes += m.need;
  in.dirty_bytes_per_s = f.guest.dirty_bytes_per_s.value_or(0);
  in.disk_write_bytes_per_s = f.guest.disk_write_bytes_per_s.value_or(0);
  in.link_bytes_per_s = f.link.bytes_per_s;
  in.bandwidth = o.bandwidth;
  in.max_downtime = o.max_downtime;
  in.other_host = !l.same_host;
  return migrate::predict(in);
}

std::vector<Check> check_convergence(const Facts& f, const Layout& l,
                                     const migrate::Prediction& prediction) {
  Checks checks;
  const migrate::LiveMigrationOptions& o = f.request.options;
  if (live_prediction(l) && !prediction.converges && !o.auto_converge && !o.postcopy &&
      o.timeout_action != "suspend")
    checks.warn("convergence",
                fmt::format("the guest dirties {}/s, the link carries {}/s: it would not "
                            "converge; use --auto-converge, --timeout-action suspend, or "
                            "more --bandwidth",
                            human_bytes(static_cast<std::uint64_t>(
                                std::max(0.0, f.guest.dirty_bytes_per_s.value_or(0)))),
                            human_bytes(static_cast<std::uint64_t>(
                                migrate::limited_rate(f.link.bytes_per_s, o.bandwidth)))));
  return checks.take();
}

std::vector<Check> check_tcg_writes(const Facts& f, const Layout& l) {
  Checks checks;
  if (live_prediction(l) && f.guest.domain.virt_type == "qemu")
    checks.warn("tcg",
                "the guest runs under TCG (software emulation): in the lab, QEMU 7.2 lost "
                "memory writes of TCG guests that wrote to their memory during a live "
                "migration, and some crashed on the destination (about 1 in 45 fast "
                "migrations, 10 of 15 slow ones; plain virsh migrate too): the less the guest "
                "writes and the faster the link, the safer");
  return checks.take();
}

MigrationPlan plan_migration(const Facts& f) {
  MigrationPlan plan;
  plan.link = f.link;
  Layout l = lay_out(f);
  plan.type = l.type;
  plan.why = l.why;
  plan.live.vm = f.request.vm;
  plan.live.source_host = f.request.source_host;
  plan.live.dest_host = f.dest.host;
  plan.live.dest_peer_uri = f.dest.peer_uri;
  plan.live.migrate_uri = f.dest.migrate_uri;
  plan.live.memory_bytes = f.guest.domain.memory_bytes;
  std::vector<Check>& checks = plan.checks;
  auto add = [&](std::vector<Check> more) {
    for (auto& c : more) checks.push_back(std::move(c));
  };
  add(check_type(f, l));
  std::vector<Check> dest = check_destination(f, l);
  bool reachable = std::none_of(dest.begin(), dest.end(),
                                [](const Check& c) { return c.status == CheckStatus::kFail; });
  add(std::move(dest));
  if (!reachable) return plan;
  add(check_name(f, l));
  add(check_cpu(f, l));
  add(check_machine(f, l));
  add(check_memory(f, l));
  add(check_tcg(f, l));
  add(check_postcopy(f, l));
  add(check_compress(f, l));
  add(check_bandwidth(f, l));
  add(check_devices(f, l));
  add(check_networks(f, l));
  add(check_firmware(f, l));
  add(check_files(f, l));
  add(check_requested(f, l));
  add(check_cache(f, l));
  add(check_shared_disks(f, l));
  CopyTargets targets = assess_copies(f, l);
  add(check_leftovers(f, l));
  add(check_saved_state(f, l));
  add(check_backing(f, l));
  add(check_disks(f, l, targets));
  add(check_replace(f, l, targets));
  add(check_space(f, l, targets));
  plan.live.copies = targets.copies;
  plan.live.shared = l.shared;

  plan.live.link_bytes_per_s = f.link.bytes_per_s;
  plan.live.prediction = predict_plan(f, l, plan.live.copies);
  add(check_convergence(f, l, plan.live.prediction));
  add(check_tcg_writes(f, l));
  if (live_prediction(l) && !f.guest.dirty_bytes_per_s)
    plan.notes.push_back(
        fmt::format("the guest's dirty rate is unknown ({}): the prediction "
                    "assumes an idle guest",
                    f.guest.measure_note.empty() ? "not measured" : f.guest.measure_note));
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
    why.push_back(fmt::format("{}, {} free memory, about {:.1f} s", kind_name(plan.type),
                              human_bytes(dest.free_memory), predicted / 1000.0));
  r.reason = fmt::format("{}", fmt::join(why, "; "));
  return r;
}

}  // namespace vmshift::core
