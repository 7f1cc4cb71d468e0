#include "qmp/commands.h"

#include <fmt/format.h>

#include <array>

#include "base/error.h"

namespace vmshift::qmp {
namespace {

// Small helpers so every builder reads as the schema does.
void put(Json& o, std::string_view key, const std::string& v) { o.set(key, Json::string(v)); }
void put(Json& o, std::string_view key, std::string_view v) { o.set(key, Json::string(v)); }
void put(Json& o, std::string_view key, std::int64_t v) { o.set(key, Json::integer(v)); }
void put(Json& o, std::string_view key, bool v) { o.set(key, Json::boolean(v)); }
template <typename E>
requires std::is_enum_v<E>
void put(Json& o, std::string_view key, E v) { o.set(key, Json::string(to_string(v))); }
template <typename T>
void put(Json& o, std::string_view key, const std::optional<T>& v) {
  if (v) put(o, key, *v);
}

// Runs the parser over a reply and turns a shape error into a protocol error
// naming the command.
template <typename F>
auto parse_reply(std::string_view command, F&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kBadData) throw;
    throw Error(ErrorCode::kProtocol,
                fmt::format("unexpected reply to QEMU command '{}': {}", command, e.what()));
  }
}

template <typename T, typename F>
std::vector<T> parse_list(const Json& reply, F&& parse_one) {
  std::vector<T> out;
  for (const Json& item : reply.items()) out.push_back(parse_one(item));
  return out;
}

void execute_void(Client& qmp, std::string_view command, const Json& args, Deadline deadline) {
  qmp.execute(command, args, deadline);
}

// Schema names of each enum, in the order of its enumerators.
constexpr std::array<std::string_view, 3> kMirrorSync = {"top", "full", "none"};
constexpr std::array<std::string_view, 2> kMirrorCopyMode = {"background", "write-blocking"};
constexpr std::array<std::string_view, 5> kOnError = {"report", "ignore", "enospc", "stop", "auto"};
constexpr std::array<std::string_view, 2> kNewImageMode = {"existing", "absolute-paths"};
constexpr std::array<std::string_view, 12> kMigrationCapability = {"xbzrle",
                                                                   "auto-converge",
                                                                   "zero-blocks",
                                                                   "events",
                                                                   "postcopy-ram",
                                                                   "return-path",
                                                                   "pause-before-switchover",
                                                                   "multifd",
                                                                   "dirty-bitmaps",
                                                                   "late-block-activate",
                                                                   "validate-uuid",
                                                                   "zero-copy-send"};
constexpr std::array<std::string_view, 3> kMultifdCompression = {"none", "zlib", "zstd"};

static_assert(static_cast<std::size_t>(MirrorSync::kNone) + 1 == kMirrorSync.size());
static_assert(static_cast<std::size_t>(MirrorCopyMode::kWriteBlocking) + 1 ==
              kMirrorCopyMode.size());
static_assert(static_cast<std::size_t>(OnError::kAuto) + 1 == kOnError.size());
static_assert(static_cast<std::size_t>(NewImageMode::kAbsolutePaths) + 1 == kNewImageMode.size());
static_assert(static_cast<std::size_t>(MigrationCapability::kZeroCopySend) + 1 ==
              kMigrationCapability.size());
static_assert(static_cast<std::size_t>(MultifdCompression::kZstd) + 1 ==
              kMultifdCompression.size());

template <typename E, std::size_t N>
std::string_view name_of(E v, const std::array<std::string_view, N>& names) noexcept {
  auto i = static_cast<std::size_t>(v);
  return i < N ? names[i] : "?";
}

}  // namespace

std::string_view to_string(MirrorSync v) noexcept { return name_of(v, kMirrorSync); }
std::string_view to_string(MirrorCopyMode v) noexcept { return name_of(v, kMirrorCopyMode); }
std::string_view to_string(OnError v) noexcept { return name_of(v, kOnError); }
std::string_view to_string(NewImageMode v) noexcept { return name_of(v, kNewImageMode); }
std::string_view to_string(MigrationCapability v) noexcept {
  return name_of(v, kMigrationCapability);
}
std::string_view to_string(MultifdCompression v) noexcept {
  return name_of(v, kMultifdCompression);
}

// ---- run state -----------------------------------------------------------

RunStatus parse_status(const Json& reply) {
  return parse_reply("query-status", [&] {
    return RunStatus{reply.get_string("status"), reply.get_bool("running")};
  });
}

RunStatus query_status(Client& qmp, Deadline deadline) {
  return parse_status(qmp.execute("query-status", deadline));
}

void stop(Client& qmp, Deadline deadline) { qmp.execute("stop", deadline); }
void cont(Client& qmp, Deadline deadline) { qmp.execute("cont", deadline); }

// ---- block devices and nodes ---------------------------------------------

BlockNode parse_block_node(const Json& info) {
  BlockNode n;
  n.node_name = info.find_string("node-name").value_or("");
  n.file = info.get_string("file");
  n.driver = info.get_string("drv");
  n.read_only = info.get_bool("ro");
  n.backing_file = info.find_string("backing_file");
  n.backing_file_depth = info.get_int("backing_file_depth");
  Json image = info.get("image");
  n.virtual_size = image.get_int("virtual-size");
  n.actual_size = image.find_int("actual-size");
  return n;
}

std::vector<BlockDevice> parse_block_devices(const Json& reply) {
  return parse_reply("query-block", [&] {
    return parse_list<BlockDevice>(reply, [](const Json& item) {
      BlockDevice d;
      d.device = item.get_string("device");
      d.qdev = item.find_string("qdev").value_or("");
      d.type = item.get_string("type");
      d.removable = item.get_bool("removable");
      if (auto ins = item.find("inserted")) d.inserted = parse_block_node(*ins);
      return d;
    });
  });
}

std::vector<BlockDevice> query_block(Client& qmp, Deadline deadline) {
  return parse_block_devices(qmp.execute("query-block", deadline));
}

std::vector<BlockNode> parse_block_nodes(const Json& reply) {
  return parse_reply("query-named-block-nodes",
                     [&] { return parse_list<BlockNode>(reply, parse_block_node); });
}

std::vector<BlockNode> query_named_block_nodes(Client& qmp, Deadline deadline, bool flat) {
  Json args = Json::object();
  put(args, "flat", flat);
  return parse_block_nodes(qmp.execute("query-named-block-nodes", args, deadline));
}

Json image_node(const ImageNodeSpec& spec) {
  if (spec.format != "qcow2" && spec.format != "raw")
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("image format '{}' is not supported (qcow2 or raw)", spec.format));
  if (spec.backing && spec.format != "qcow2")
    throw Error(ErrorCode::kInvalidArgument, "only a qcow2 node can have a backing node");
  Json file = Json::object();
  put(file, "driver", std::string_view("file"));
  put(file, "filename", spec.filename);
  Json node = Json::object();
  put(node, "driver", spec.format);
  put(node, "node-name", spec.node_name);
  node.set("file", file);
  if (spec.read_only) put(node, "read-only", true);
  if (spec.backing) node.set("backing", *spec.backing);
  put(node, "discard", spec.discard);
  if (spec.cache_direct)
    node.set("cache", Json::object().set("direct", Json::boolean(*spec.cache_direct)));
  return node;
}

void blockdev_add(Client& qmp, const Json& options, Deadline deadline) {
  execute_void(qmp, "blockdev-add", options, deadline);
}

void blockdev_del(Client& qmp, std::string_view node_name, Deadline deadline) {
  Json args = Json::object();
  put(args, "node-name", node_name);
  execute_void(qmp, "blockdev-del", args, deadline);
}

// ---- block jobs ----------------------------------------------------------

Json to_arguments(const BlockdevMirrorArgs& a) {
  Json o = Json::object();
  put(o, "job-id", a.job_id);
  put(o, "device", a.device);
  put(o, "target", a.target);
  put(o, "replaces", a.replaces);
  put(o, "sync", a.sync);
  put(o, "speed", a.speed);
  put(o, "granularity", a.granularity);
  put(o, "buf-size", a.buf_size);
  put(o, "on-source-error", a.on_source_error);
  put(o, "on-target-error", a.on_target_error);
  put(o, "filter-node-name", a.filter_node_name);
  put(o, "copy-mode", a.copy_mode);
  put(o, "auto-finalize", a.auto_finalize);
  put(o, "auto-dismiss", a.auto_dismiss);
  return o;
}

void blockdev_mirror(Client& qmp, const BlockdevMirrorArgs& args, Deadline deadline) {
  execute_void(qmp, "blockdev-mirror", to_arguments(args), deadline);
}

Json to_arguments(const DriveMirrorArgs& a) {
  Json o = Json::object();
  put(o, "job-id", a.job_id);
  put(o, "device", a.device);
  put(o, "target", a.target);
  put(o, "format", a.format);
  put(o, "node-name", a.node_name);
  put(o, "replaces", a.replaces);
  put(o, "sync", a.sync);
  put(o, "mode", a.mode);
  put(o, "speed", a.speed);
  put(o, "granularity", a.granularity);
  put(o, "buf-size", a.buf_size);
  put(o, "on-source-error", a.on_source_error);
  put(o, "on-target-error", a.on_target_error);
  put(o, "unmap", a.unmap);
  put(o, "copy-mode", a.copy_mode);
  put(o, "auto-finalize", a.auto_finalize);
  put(o, "auto-dismiss", a.auto_dismiss);
  return o;
}

void drive_mirror(Client& qmp, const DriveMirrorArgs& args, Deadline deadline) {
  execute_void(qmp, "drive-mirror", to_arguments(args), deadline);
}

Json to_arguments(const BlockCommitArgs& a) {
  Json o = Json::object();
  put(o, "job-id", a.job_id);
  put(o, "device", a.device);
  put(o, "base-node", a.base_node);
  put(o, "base", a.base);
  put(o, "top-node", a.top_node);
  put(o, "top", a.top);
  put(o, "backing-file", a.backing_file);
  put(o, "speed", a.speed);
  put(o, "on-error", a.on_error);
  put(o, "filter-node-name", a.filter_node_name);
  put(o, "auto-finalize", a.auto_finalize);
  put(o, "auto-dismiss", a.auto_dismiss);
  return o;
}

void block_commit(Client& qmp, const BlockCommitArgs& args, Deadline deadline) {
  execute_void(qmp, "block-commit", to_arguments(args), deadline);
}

Json to_arguments(const SnapshotSyncArgs& a) {
  if (a.device.has_value() == a.node_name.has_value())
    throw Error(ErrorCode::kInvalidArgument,
                "blockdev-snapshot-sync needs exactly one of device and node-name");
  Json o = Json::object();
  put(o, "device", a.device);
  put(o, "node-name", a.node_name);
  put(o, "snapshot-file", a.snapshot_file);
  put(o, "snapshot-node-name", a.snapshot_node_name);
  put(o, "format", a.format);
  put(o, "mode", a.mode);
  return o;
}

void blockdev_snapshot_sync(Client& qmp, const SnapshotSyncArgs& args, Deadline deadline) {
  execute_void(qmp, "blockdev-snapshot-sync", to_arguments(args), deadline);
}

void block_job_complete(Client& qmp, std::string_view job_id, Deadline deadline) {
  Json o = Json::object();
  put(o, "device", job_id);
  execute_void(qmp, "block-job-complete", o, deadline);
}

void block_job_cancel(Client& qmp, std::string_view job_id, bool force, Deadline deadline) {
  Json o = Json::object();
  put(o, "device", job_id);
  put(o, "force", force);
  execute_void(qmp, "block-job-cancel", o, deadline);
}

void block_job_set_speed(Client& qmp, std::string_view job_id, std::int64_t bytes_per_second,
                         Deadline deadline) {
  if (bytes_per_second < 0)
    throw Error(ErrorCode::kInvalidArgument, "a block job's speed cannot be negative");
  Json o = Json::object();
  put(o, "device", job_id);
  put(o, "speed", bytes_per_second);
  execute_void(qmp, "block-job-set-speed", o, deadline);
}

std::vector<BlockJob> parse_block_jobs(const Json& reply) {
  return parse_reply("query-block-jobs", [&] {
    return parse_list<BlockJob>(reply, [](const Json& j) {
      BlockJob b;
      b.type = j.get_string("type");
      b.device = j.get_string("device");
      b.status = j.get_string("status");
      b.len = j.get_int("len");
      b.offset = j.get_int("offset");
      b.speed = j.get_int("speed");
      b.busy = j.get_bool("busy");
      b.paused = j.get_bool("paused");
      b.ready = j.get_bool("ready");
      b.error = j.find_string("error");
      return b;
    });
  });
}

std::vector<BlockJob> query_block_jobs(Client& qmp, Deadline deadline) {
  return parse_block_jobs(qmp.execute("query-block-jobs", deadline));
}

std::vector<JobInfo> parse_jobs(const Json& reply) {
  return parse_reply("query-jobs", [&] {
    return parse_list<JobInfo>(reply, [](const Json& j) {
      JobInfo info;
      info.id = j.get_string("id");
      info.type = j.get_string("type");
      info.status = j.get_string("status");
      info.current_progress = j.get_int("current-progress");
      info.total_progress = j.get_int("total-progress");
      info.error = j.find_string("error");
      return info;
    });
  });
}

std::vector<JobInfo> query_jobs(Client& qmp, Deadline deadline) {
  return parse_jobs(qmp.execute("query-jobs", deadline));
}

// ---- migration -----------------------------------------------------------

void migrate(Client& qmp, std::string_view uri, Deadline deadline, bool resume) {
  Json o = Json::object();
  put(o, "uri", uri);
  if (resume) put(o, "resume", true);
  execute_void(qmp, "migrate", o, deadline);
}

void migrate_set_capabilities(Client& qmp,
                              const std::vector<std::pair<MigrationCapability, bool>>& caps,
                              Deadline deadline) {
  Json list = Json::array();
  for (const auto& [cap, state] : caps) {
    Json c = Json::object();
    put(c, "capability", cap);
    put(c, "state", state);
    list.push(c);
  }
  execute_void(qmp, "migrate-set-capabilities", Json::object().set("capabilities", list), deadline);
}

Json to_arguments(const MigrationParameters& p) {
  Json o = Json::object();
  put(o, "max-bandwidth", p.max_bandwidth);
  put(o, "downtime-limit", p.downtime_limit);
  put(o, "multifd-channels", p.multifd_channels);
  put(o, "multifd-compression", p.multifd_compression);
  put(o, "multifd-zstd-level", p.multifd_zstd_level);
  put(o, "xbzrle-cache-size", p.xbzrle_cache_size);
  put(o, "max-postcopy-bandwidth", p.max_postcopy_bandwidth);
  put(o, "cpu-throttle-initial", p.cpu_throttle_initial);
  put(o, "cpu-throttle-increment", p.cpu_throttle_increment);
  put(o, "cpu-throttle-tailslow", p.cpu_throttle_tailslow);
  put(o, "max-cpu-throttle", p.max_cpu_throttle);
  put(o, "tls-creds", p.tls_creds);
  put(o, "tls-hostname", p.tls_hostname);
  return o;
}

void migrate_set_parameters(Client& qmp, const MigrationParameters& params, Deadline deadline) {
  execute_void(qmp, "migrate-set-parameters", to_arguments(params), deadline);
}

MigrationInfo parse_migration_info(const Json& reply) {
  return parse_reply("query-migrate", [&] {
    MigrationInfo info;
    info.status = reply.find_string("status").value_or("none");
    if (auto ram = reply.find("ram")) {
      MigrationRam r;
      r.transferred = ram->get_int("transferred");
      r.remaining = ram->get_int("remaining");
      r.total = ram->get_int("total");
      r.dirty_pages_rate = ram->get_int("dirty-pages-rate");
      r.dirty_sync_count = ram->get_int("dirty-sync-count");
      r.mbps = ram->get_number("mbps");
      info.ram = r;
    }
    info.total_time = reply.find_int("total-time");
    info.expected_downtime = reply.find_int("expected-downtime");
    info.downtime = reply.find_int("downtime");
    info.setup_time = reply.find_int("setup-time");
    info.cpu_throttle_percentage = reply.find_int("cpu-throttle-percentage");
    info.error_desc = reply.find_string("error-desc");
    return info;
  });
}

MigrationInfo query_migrate(Client& qmp, Deadline deadline) {
  return parse_migration_info(qmp.execute("query-migrate", deadline));
}

// ---- misc ----------------------------------------------------------------

std::string human_monitor_command(Client& qmp, std::string_view command_line, Deadline deadline) {
  Json o = Json::object();
  put(o, "command-line", command_line);
  Json r = qmp.execute("human-monitor-command", o, deadline);
  return parse_reply("human-monitor-command", [&] { return r.as_string(); });
}

void quit(Client& qmp, Deadline deadline) { qmp.execute("quit", deadline); }

}  // namespace vmshift::qmp
