#include "guest/qmp_guest.h"

#include <fmt/format.h>

#include "base/subprocess.h"
#include "qmp/commands.h"

namespace vmshift::guest {
namespace {

constexpr auto kCommand = std::chrono::seconds(30);
Deadline soon() { return Deadline::after(kCommand); }

// "/machine/peripheral/vd0/virtio-backend" -> "vd0"; a legacy drive keeps
// its drive name.
std::string target_name(const qmp::BlockDevice& d) {
  if (!d.device.empty()) return d.device;
  std::string q = d.qdev;
  const std::string prefix = "/machine/peripheral/";
  if (q.starts_with(prefix)) {
    q = q.substr(prefix.size());
    return q.substr(0, q.find('/'));
  }
  return q;
}

}  // namespace

std::string QmpGuest::job_id(const std::string& target) { return "vmshift-copy-" + target; }
std::string QmpGuest::target_node_prefix(const std::string& target) {
  return "vmshift-dst-" + target + "-";
}

QmpGuest::QmpGuest(const std::string& socket)
    : socket_(socket), qmp_(qmp::ClientOptions{.name = socket}) {
  qmp_.connect(socket, soon());
}

std::string QmpGuest::describe() const { return fmt::format("the QEMU at '{}'", socket_); }

std::string QmpGuest::state() { return qmp::query_status(qmp_, soon()).status; }

std::map<std::string, QmpGuest::Disk> QmpGuest::read_disks() {
  std::map<std::string, Disk> out;
  for (const qmp::BlockDevice& d : qmp::query_block(qmp_, soon())) {
    if (!d.inserted || d.removable) continue;
    Disk disk;
    disk.node = d.inserted->node_name;
    disk.info.target = target_name(d);
    disk.info.path = d.inserted->file;
    disk.info.format = d.inserted->driver;
    disk.info.capacity = static_cast<std::uint64_t>(d.inserted->virtual_size);
    disk.info.allocation = storage_.allocation(disk.info.path).value_or(0);
    if (d.inserted->backing_file) disk.info.backing.push_back(*d.inserted->backing_file);
    out[disk.info.target] = disk;
  }
  return out;
}

std::vector<DiskInfo> QmpGuest::disks() {
  disks_ = read_disks();
  std::vector<DiskInfo> out;
  for (const auto& [t, d] : disks_) out.push_back(d.info);
  return out;
}

QmpGuest::Disk& QmpGuest::disk(const std::string& target) {
  if (disks_.empty()) disks_ = read_disks();
  auto it = disks_.find(target);
  if (it == disks_.end())
    throw Error(ErrorCode::kNotFound, fmt::format("{} has no disk '{}'", describe(), target));
  return it->second;
}

void QmpGuest::start_copy(const CopyRequest& r) {
  Disk& d = disk(r.target);
  // The destination image: same format and virtual size; for a shallow copy
  // it has the source's backing file.
  Argv create = {"qemu-img", "create", "-q", "-f", r.format};
  if (r.shallow && !d.info.backing.empty()) {
    // The backing file's own format, as qemu-img reads it (-U: QEMU holds it).
    Argv info = {"qemu-img", "info", "-U", "--output=json", d.info.backing.front()};
    std::string fmt_name =
        Json::parse(run_checked(info, Deadline::after(std::chrono::seconds(30))).out)
            .get_string("format");
    create.insert(create.end(), {"-F", fmt_name, "-b", d.info.backing.front()});
  }
  create.insert(create.end(), {r.dest, std::to_string(d.info.capacity)});
  run_checked(create, Deadline::after(std::chrono::seconds(60)));
  std::string node = fmt::format("{}{}", target_node_prefix(r.target),
                                 std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  qmp::ImageNodeSpec spec{.node_name = node, .filename = r.dest, .format = r.format};
  if (r.format == "qcow2" && !r.shallow) spec.backing = Json::null();
  try {
    qmp::blockdev_add(qmp_, qmp::image_node(spec), soon());
    qmp::blockdev_mirror(
        qmp_,
        {.job_id = job_id(r.target),
         .device = d.node,
         .target = node,
         .sync = r.shallow ? qmp::MirrorSync::kTop : qmp::MirrorSync::kFull,
         .speed = r.bandwidth > 0 ? std::optional<std::int64_t>(r.bandwidth) : std::nullopt,
         .copy_mode =
             r.sync_writes ? std::optional(qmp::MirrorCopyMode::kWriteBlocking) : std::nullopt},
        soon());
  } catch (...) {
    try {
      qmp::blockdev_del(qmp_, node, soon());
    } catch (const Error&) {
    }
    storage_.remove(r.dest);
    throw;
  }
  old_nodes_[r.target] = d.node;
  new_nodes_[r.target] = node;
}

std::optional<std::string> QmpGuest::ended_with(const std::string& target) {
  std::string id = job_id(target);
  auto mine = [&](const qmp::Event& e) { return e.data.find_string("device").value_or("") == id; };
  for (const char* name : {"BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"}) {
    try {
      qmp::Event e = qmp_.wait_for_event(name, mine, Deadline::after(std::chrono::seconds(0)));
      return e.data.find_string("error").value_or(
          std::string(name) == "BLOCK_JOB_CANCELLED" ? "the copy was cancelled" : "the copy ended");
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kTimeout) throw;
    }
  }
  return std::nullopt;
}

CopyStatus QmpGuest::copy_status(const std::string& target) {
  CopyStatus s;
  for (const qmp::BlockJob& j : qmp::query_block_jobs(qmp_, soon())) {
    if (j.device != job_id(target)) continue;
    s.active = true;
    s.done = static_cast<std::uint64_t>(j.offset);
    s.total = static_cast<std::uint64_t>(j.len);
    s.ready = j.ready;
    if (j.error) s.error = *j.error;
    return s;
  }
  s.error = ended_with(target);
  return s;
}

void QmpGuest::set_copy_bandwidth(const std::string& target, std::uint64_t bps) {
  qmp::block_job_set_speed(qmp_, job_id(target), static_cast<std::int64_t>(bps), soon());
}

std::chrono::milliseconds QmpGuest::pivot(const std::string& target, Deadline deadline) {
  auto start = std::chrono::steady_clock::now();
  std::string id = job_id(target);
  qmp::block_job_complete(qmp_, id, deadline);
  qmp::Event e = qmp_.wait_for_event(
      "BLOCK_JOB_COMPLETED",
      [&](const qmp::Event& ev) { return ev.data.find_string("device").value_or("") == id; },
      deadline);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  if (auto err = e.data.find_string("error"))
    throw Error(ErrorCode::kCommandFailed,
                fmt::format("the switch of disk {} to its copy failed: {}", target, *err));
  // The old nodes are no longer used by the device: remove them.
  if (auto it = old_nodes_.find(target); it != old_nodes_.end()) {
    try {
      qmp::blockdev_del(qmp_, it->second, soon());
    } catch (const qmp::CommandError&) {
      // A node QEMU made itself (legacy -drive) cannot be deleted this way;
      // QEMU frees it with its last user.
    }
    old_nodes_.erase(it);
  }
  new_nodes_.erase(target);
  disks_.clear();
  return took;
}

void QmpGuest::abort_copy(const std::string& target, Deadline deadline) {
  std::string id = job_id(target);
  bool running = false;
  for (const qmp::BlockJob& j : qmp::query_block_jobs(qmp_, soon()))
    running = running || j.device == id;
  if (running) {
    qmp::block_job_cancel(qmp_, id, /*force=*/true, deadline);
    auto mine = [&](const qmp::Event& e) {
      return e.data.find_string("device").value_or("") == id;
    };
    // A ready mirror ends COMPLETED on cancel (without switching), one still
    // copying ends CANCELLED.
    for (;;) {
      std::vector<qmp::Event> evs = qmp_.take_events();
      bool ended = false;
      for (const auto& e : evs)
        ended = ended ||
                ((e.name == "BLOCK_JOB_CANCELLED" || e.name == "BLOCK_JOB_COMPLETED") && mine(e));
      if (ended) break;
      bool still = false;
      for (const qmp::BlockJob& j : qmp::query_block_jobs(qmp_, soon()))
        still = still || j.device == id;
      if (!still) break;
      qmp_.wait_for_event("JOB_STATUS_CHANGE", deadline);
    }
  }
  // Remove the destination node: the one this object added, or (after a
  // crash) any of vmshift's for this disk that the device does not use.
  disks_ = read_disks();
  std::string in_use = disks_.count(target) ? disks_[target].node : "";
  std::vector<std::string> nodes;
  if (auto it = new_nodes_.find(target); it != new_nodes_.end()) {
    nodes.push_back(it->second);
  } else {
    for (const qmp::BlockNode& n : qmp::query_named_block_nodes(qmp_, soon()))
      if (n.node_name.starts_with(target_node_prefix(target))) nodes.push_back(n.node_name);
  }
  for (const auto& n : nodes) {
    if (n == in_use) continue;
    try {
      qmp::blockdev_del(qmp_, n, soon());
    } catch (const qmp::CommandError&) {
      // Already gone.
    }
  }
  new_nodes_.erase(target);
  old_nodes_.erase(target);
}

std::string QmpGuest::active_path(const std::string& target) {
  disks_ = read_disks();
  return disk(target).info.path;
}

std::string QmpGuest::persist_paths(const std::map<std::string, std::string>& paths) {
  std::string list;
  for (const auto& [t, p] : paths) list += fmt::format("{}{}={}", list.empty() ? "" : ", ", t, p);
  return fmt::format(
      "a bare QEMU has no stored definition: start it with the new paths next time ({})", list);
}

}  // namespace vmshift::guest
