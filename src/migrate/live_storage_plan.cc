// move-storage's checks: gather_facts is the only function here that asks
// the guest or its storage anything; the rules read the facts.
#include "migrate/live_storage_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "base/format.h"
#include "hosts/libvirt_storage.h"

namespace vmshift::migrate {
namespace live_storage {
namespace {

using hosts::basename_of;
using hosts::dirname_of;

std::string list_targets(const std::vector<guest::DiskInfo>& disks) {
  std::string s;
  for (const auto& d : disks) s += (s.empty() ? "" : ", ") + d.target;
  return s.empty() ? "none" : s;
}

bool running(const std::string& state) { return state == "running" || state == "paused"; }

template <typename T, typename Key>
const T& answer(const std::map<Key, Probed<T>>& probes, const Key& key, const std::string& what) {
  auto it = probes.find(key);
  if (it == probes.end())
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("cannot check: {} was not looked at", what));
  if (it->second.error) throw *it->second.error;
  return it->second.value;
}

// Asks the storage, keeping its error in the facts.
template <typename T, typename F>
Probed<T> probe(F&& ask) {
  Probed<T> p;
  try {
    p.value = ask();
  } catch (const Error& e) {
    p.error = e;
  }
  return p;
}

}  // namespace

std::optional<std::uint64_t> Facts::free_bytes(const std::string& dir) const {
  return answer(free, dir, fmt::format("the free space of '{}'", dir));
}

bool Facts::exists_at(const std::string& path) const {
  return answer(exists, path, fmt::format("'{}'", path));
}

bool Facts::same_file(const std::string& dest, const std::string& file) const {
  return answer(same, std::make_pair(dest, file), fmt::format("whether '{}' is '{}'", dest, file));
}

std::optional<hosts::FileIdentity> Facts::identity(const std::string& path) const {
  return answer(ids, path, fmt::format("the identity of '{}'", path));
}

std::optional<std::uint64_t> Facts::allocation_of(const std::string& path) const {
  return answer(allocation, path, fmt::format("the allocation of '{}'", path));
}

Facts gather_facts(guest::Guest& g, const LiveStorageOptions& o,
                   const std::map<std::string, std::string>& in_use) {
  Facts f;
  f.vm = g.describe();
  f.in_use = in_use;
  f.state = g.state();
  if (!running(f.state) || (!o.to_dir && o.disks.empty())) return f;
  f.disks = g.disks();
  std::vector<Choice> chosen;
  try {
    chosen = choose_disks(f, o);
  } catch (const Error&) {
    return f;  // plan() refuses the request before any probe
  }
  hosts::Storage& s = g.storage();
  std::vector<std::string> used = files_used(f);
  for (const auto& c : chosen) {
    const std::string& dest = c.dest;
    if (dest.empty() || dest.front() != '/') continue;
    std::string dir = dirname_of(dest);
    if (!f.free.count(dir))
      f.free[dir] = probe<std::optional<std::uint64_t>>([&] { return s.free_bytes(dir); });
    if (!o.shallow)
      for (const auto& b : c.disk.backing)
        if (!f.allocation.count(b))
          f.allocation[b] = probe<std::optional<std::uint64_t>>([&] { return s.allocation(b); });
    Probed<bool>& there = f.exists[dest] = probe<bool>([&] { return s.exists(dest); });
    if (there.error || !there.value) continue;
    for (const auto& file : used) {
      Probed<bool>& same = f.same[{dest, file}] =
          probe<bool>([&] { return s.same_file(dest, file); });
      if (same.error || same.value) break;  // the check stops here
    }
    if (!o.force) continue;
    for (const auto& [path, who] : in_use)
      if (path != dest && basename_of(path) == basename_of(dest))
        f.same[{dest, path}] = probe<bool>([&] { return s.same_file(dest, path); });
    f.ids[dest] = probe<std::optional<hosts::FileIdentity>>([&] { return s.identity(dest); });
  }
  return f;
}

void check_state(const Facts& f) {
  if (!running(f.state))
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("{} is {}: a live storage migration needs a running (or paused) VM",
                            f.vm, f.state));
}

void check_where(const LiveStorageOptions& o) {
  if (!o.to_dir && o.disks.empty())
    throw Error(ErrorCode::kInvalidArgument,
                "say where the disks go: --to DIR or --disk TARGET=PATH");
}

std::vector<Choice> choose_disks(const Facts& f, const LiveStorageOptions& o) {
  const std::vector<guest::DiskInfo>& disks = f.disks;
  std::vector<Choice> chosen;
  auto find = [&](const std::string& target) -> const guest::DiskInfo& {
    for (const auto& d : disks)
      if (d.target == target) return d;
    throw Error(ErrorCode::kNotFound,
                fmt::format("{} has no disk '{}' (disks: {})", f.vm, target, list_targets(disks)));
  };
  auto into_dir = [&](const guest::DiskInfo& d) {
    std::string dir = *o.to_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return dir + "/" + basename_of(d.path);
  };
  if (o.disks.empty()) {
    if (o.to_dir)
      for (const auto& d : disks)
        if (!d.path.empty()) chosen.push_back({d, into_dir(d)});
  } else {
    std::set<std::string> named;
    for (const auto& [target, path] : o.disks) {
      if (!named.insert(target).second)
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("disk {} is named twice with --disk", target));
      const guest::DiskInfo& d = find(target);
      if (d.path.empty())
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("disk {} has no file to move (an empty drive)", target));
      if (path.empty() && !o.to_dir)
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("disk {} has no destination: write --disk {}=PATH or add --to DIR",
                                target, target));
      chosen.push_back({d, path.empty() ? into_dir(d) : path});
    }
  }
  if (chosen.empty())
    throw Error(ErrorCode::kNotFound, fmt::format("{} has no disk to move", f.vm));
  return chosen;
}

std::vector<std::string> files_used(const Facts& f) {
  std::vector<std::string> used;
  for (const auto& d : f.disks) {
    if (!d.path.empty()) used.push_back(d.path);
    used.insert(used.end(), d.backing.begin(), d.backing.end());
  }
  return used;
}

void check_path(const Choice& c, const std::vector<std::string>& used,
                std::map<std::string, std::string>& dests) {
  const guest::DiskInfo& d = c.disk;
  const std::string& dest = c.dest;
  if (dest.empty() || dest.front() != '/')
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("destination '{}' of disk {} must be an absolute path", dest, d.target));
  if (auto [it, fresh] = dests.emplace(dest, d.target); !fresh)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("two disks would go to the same file '{}' (disks {} and {})", dest,
                            it->second, d.target));
  if (std::find(used.begin(), used.end(), dest) != used.end())
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("destination '{}' of disk {} is a file the VM already uses", dest, d.target));
}

void check_dir(const Facts& f, const Choice& c) {
  try {
    f.free_bytes(dirname_of(c.dest));  // the probe failed when the directory is not there
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("destination of disk {}: {}", c.disk.target, e.what()));
  }
}

std::optional<std::string> check_existing(const Facts& f, const LiveStorageOptions& o,
                                          const Choice& c, const std::vector<std::string>& used,
                                          DiskMove& m) {
  const std::string& dest = c.dest;
  const std::string& target = c.disk.target;
  if (!f.exists_at(dest)) return std::nullopt;
  for (const auto& file : used)
    if (f.same_file(dest, file))
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("destination '{}' of disk {} is the file '{}' the VM already "
                              "uses (through a link or another name of its directory)",
                              dest, target, file));
  if (!o.force)
    throw Error(ErrorCode::kAlreadyExists,
                fmt::format("destination '{}' of disk {} already exists (--force replaces it)",
                            dest, target));
  // --force never replaces a file another defined VM uses (by its path;
  // or through a link or another name of its directory, looked at for
  // files of the same name).
  for (const auto& [path, who] : f.in_use) {
    bool same = path == dest;
    if (!same && basename_of(path) == basename_of(dest)) {
      try {
        same = f.same_file(dest, path);
      } catch (const Error& e) {
        throw Error(ErrorCode::kFailedPrecondition,
                    fmt::format("destination '{}' of disk {} exists, and whether it is the "
                                "file '{}' of {} cannot be checked: {}",
                                dest, target, path, who, e.what()));
      }
    }
    if (same)
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("destination '{}' of disk {} is a file {} uses it as '{}'; "
                              "--force never replaces a file a defined VM uses",
                              dest, target, who, path));
  }
  m.replace_existing = true;
  m.replaces = f.identity(dest);
  return fmt::format("--force replaces '{}' (disk {}): no defined VM uses it", dest, target);
}

std::uint64_t need(const Facts& f, const LiveStorageOptions& o, const Choice& c) {
  std::uint64_t n = c.disk.allocation;
  if (!o.shallow)
    for (const auto& b : c.disk.backing) n += f.allocation_of(b).value_or(0);
  return n;
}

void check_space(const Facts& f, const std::vector<DiskMove>& moves) {
  std::map<std::string, std::uint64_t> need_per_dir;
  std::map<std::string, std::vector<std::string>> disks_per_dir;
  for (const auto& m : moves) {
    need_per_dir[dirname_of(m.dest)] += m.need;
    disks_per_dir[dirname_of(m.dest)].push_back(m.target);
  }
  for (const auto& [dir, bytes] : need_per_dir) {
    std::optional<std::uint64_t> free = f.free_bytes(dir);
    // A margin for metadata and for what the guest writes during the copy.
    std::uint64_t want = bytes + bytes / 20 + (16u << 20);
    if (free && *free < want)
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("not enough space in '{}' for disk{} {}: {} needed ({} of "
                              "allocated data and a margin), {} free",
                              dir, disks_per_dir[dir].size() == 1 ? "" : "s",
                              fmt::join(disks_per_dir[dir], ", "), human_bytes(want),
                              human_bytes(bytes), human_bytes(*free)));
  }
}

LiveStoragePlan plan(const Facts& f, const LiveStorageOptions& o) {
  check_state(f);
  check_where(o);
  std::vector<Choice> chosen = choose_disks(f, o);
  LiveStoragePlan p;
  std::map<std::string, std::string> dests;  // destination -> disk
  std::vector<std::string> used = files_used(f);
  for (const auto& c : chosen) {
    check_path(c, used, dests);
    check_dir(f, c);
    DiskMove m = move_of(c.disk, c.dest);
    if (std::optional<std::string> note = check_existing(f, o, c, used, m))
      p.notes.push_back(*note);
    m.need = need(f, o, c);
    p.moves.push_back(std::move(m));
  }
  check_space(f, p.moves);
  if (o.to_dir)
    p.notes.push_back(
        "only disks move: a running VM's other files (kernel, initrd, NVRAM, logs) stay where "
        "they are");
  if (o.shallow)
    for (const auto& m : p.moves)
      if (!m.backing.empty())
        p.notes.push_back(fmt::format("disk {} keeps its backing file '{}' (--shallow)", m.target,
                                      m.backing.front()));
  return p;
}

}  // namespace live_storage

LiveStoragePlan plan_live_storage(guest::Guest& guest, const LiveStorageOptions& options,
                                  const std::map<std::string, std::string>& in_use) {
  return live_storage::plan(live_storage::gather_facts(guest, options, in_use), options);
}

}  // namespace vmshift::migrate
