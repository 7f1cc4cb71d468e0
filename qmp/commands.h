// Typed helpers for the QMP commands vmshift uses.
//
// Each command has three parts, as in libvirt's monitor: build the arguments
// (an *Args struct and to_arguments(), so the JSON can be checked in tests
// and against QEMU's own schema), send them (Client::execute), and check and
// parse the reply into a struct. A reply of the wrong shape throws
// Error(kProtocol) naming the command; field names follow QEMU's qapi schema
// (qapi/block-core.json, qapi/migration.json, qapi/run-state.json).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/deadline.h"
#include "base/json.h"
#include "qmp/client.h"

namespace vmshift::qmp {

// ---- enums of the schema -------------------------------------------------

enum class MirrorSync { kTop, kFull, kNone };
enum class MirrorCopyMode { kBackground, kWriteBlocking };
enum class OnError { kReport, kIgnore, kEnospc, kStop, kAuto };  // BlockdevOnError
enum class NewImageMode { kExisting, kAbsolutePaths };
enum class MigrationCapability {
  kXbzrle,
  kAutoConverge,
  kZeroBlocks,
  kEvents,
  kPostcopyRam,
  kReturnPath,
  kPauseBeforeSwitchover,
  kMultifd,
  kDirtyBitmaps,
  kLateBlockActivate,
  kValidateUuid,
  kZeroCopySend,
};
enum class MultifdCompression { kNone, kZlib, kZstd };

std::string_view to_string(MirrorSync v) noexcept;
std::string_view to_string(MirrorCopyMode v) noexcept;
std::string_view to_string(OnError v) noexcept;
std::string_view to_string(NewImageMode v) noexcept;
std::string_view to_string(MigrationCapability v) noexcept;
std::string_view to_string(MultifdCompression v) noexcept;

// ---- run state -----------------------------------------------------------

struct RunStatus {
  std::string status;  // RunState: "running", "paused", "prelaunch", "postmigrate", ...
  bool running = false;
};
RunStatus parse_status(const Json& reply);
RunStatus query_status(Client& qmp, Deadline deadline);
void stop(Client& qmp, Deadline deadline);
void cont(Client& qmp, Deadline deadline);

// ---- block devices and nodes ---------------------------------------------

// BlockDeviceInfo: one node of the block graph.
struct BlockNode {
  std::string node_name;
  std::string file;    // what the node opened (file name or a json: description)
  std::string driver;  // "qcow2", "raw", "file", ...
  bool read_only = false;
  std::optional<std::string> backing_file;
  std::int64_t backing_file_depth = 0;
  std::int64_t virtual_size = 0;            // image.virtual-size
  std::optional<std::int64_t> actual_size;  // image.actual-size (allocated on the host)
};
BlockNode parse_block_node(const Json& info);

// BlockInfo: a guest device and the node inserted in it.
struct BlockDevice {
  std::string device;  // legacy drive name; empty for -blockdev devices
  std::string qdev;    // the guest device's id or QOM path
  std::string type;
  bool removable = false;
  std::optional<BlockNode> inserted;
};
std::vector<BlockDevice> parse_block_devices(const Json& reply);
std::vector<BlockDevice> query_block(Client& qmp, Deadline deadline);

std::vector<BlockNode> parse_block_nodes(const Json& reply);
std::vector<BlockNode> query_named_block_nodes(Client& qmp, Deadline deadline, bool flat = true);

// BlockdevOptions for an image file: {"driver": format, "node-name": ..,
// "file": {"driver": "file", "filename": ..}}. Anything QEMU's blockdev-add
// takes can be added to the returned Json.
struct ImageNodeSpec {
  std::string node_name;
  std::string filename;
  std::string format = "qcow2";  // "qcow2" or "raw"
  bool read_only = false;
  // qcow2 only: unset opens the backing file named in the image; Json::null()
  // opens none; a string names an existing node to use as backing.
  std::optional<Json> backing;
  std::optional<std::string> discard;  // "ignore" or "unmap"
  std::optional<bool> cache_direct;    // O_DIRECT on the file
};
Json image_node(const ImageNodeSpec& spec);
void blockdev_add(Client& qmp, const Json& options, Deadline deadline);
void blockdev_del(Client& qmp, std::string_view node_name, Deadline deadline);

// ---- block jobs ----------------------------------------------------------

struct BlockdevMirrorArgs {
  std::optional<std::string> job_id;
  std::string device;  // source node name or device
  std::string target;  // target node name (added with blockdev_add)
  std::optional<std::string> replaces;
  MirrorSync sync = MirrorSync::kFull;
  std::optional<std::int64_t> speed;  // bytes per second
  std::optional<std::int64_t> granularity;
  std::optional<std::int64_t> buf_size;
  std::optional<OnError> on_source_error;
  std::optional<OnError> on_target_error;
  std::optional<std::string> filter_node_name;
  std::optional<MirrorCopyMode> copy_mode;
  std::optional<bool> auto_finalize;
  std::optional<bool> auto_dismiss;
};
Json to_arguments(const BlockdevMirrorArgs& args);
void blockdev_mirror(Client& qmp, const BlockdevMirrorArgs& args, Deadline deadline);

struct DriveMirrorArgs {
  std::optional<std::string> job_id;
  std::string device;
  std::string target;  // a file name: QEMU creates or opens it
  std::optional<std::string> format;
  std::optional<std::string> node_name;
  std::optional<std::string> replaces;
  MirrorSync sync = MirrorSync::kFull;
  std::optional<NewImageMode> mode;
  std::optional<std::int64_t> speed;
  std::optional<std::int64_t> granularity;
  std::optional<std::int64_t> buf_size;
  std::optional<OnError> on_source_error;
  std::optional<OnError> on_target_error;
  std::optional<bool> unmap;
  std::optional<MirrorCopyMode> copy_mode;
  std::optional<bool> auto_finalize;
  std::optional<bool> auto_dismiss;
};
Json to_arguments(const DriveMirrorArgs& args);
void drive_mirror(Client& qmp, const DriveMirrorArgs& args, Deadline deadline);

struct BlockCommitArgs {
  std::optional<std::string> job_id;
  std::string device;
  std::optional<std::string> base_node;
  std::optional<std::string> base;
  std::optional<std::string> top_node;
  std::optional<std::string> top;
  std::optional<std::string> backing_file;
  std::optional<std::int64_t> speed;
  std::optional<OnError> on_error;
  std::optional<std::string> filter_node_name;
  std::optional<bool> auto_finalize;
  std::optional<bool> auto_dismiss;
};
Json to_arguments(const BlockCommitArgs& args);
void block_commit(Client& qmp, const BlockCommitArgs& args, Deadline deadline);

struct SnapshotSyncArgs {
  std::optional<std::string> device;
  std::optional<std::string> node_name;
  std::string snapshot_file;
  std::optional<std::string> snapshot_node_name;
  std::optional<std::string> format;
  std::optional<NewImageMode> mode;
};
Json to_arguments(const SnapshotSyncArgs& args);
void blockdev_snapshot_sync(Client& qmp, const SnapshotSyncArgs& args, Deadline deadline);

// "device" of these is the job id.
void block_job_complete(Client& qmp, std::string_view job_id, Deadline deadline);
void block_job_cancel(Client& qmp, std::string_view job_id, bool force, Deadline deadline);
void block_job_set_speed(Client& qmp, std::string_view job_id, std::int64_t bytes_per_second,
                         Deadline deadline);

// BlockJobInfo
struct BlockJob {
  std::string type;    // "mirror", "commit", ...
  std::string device;  // the job id
  std::string status;  // JobStatus: "running", "ready", "concluded", ...
  std::int64_t len = 0;
  std::int64_t offset = 0;
  std::int64_t speed = 0;
  bool busy = false;
  bool paused = false;
  bool ready = false;
  std::optional<std::string> error;
};
std::vector<BlockJob> parse_block_jobs(const Json& reply);
std::vector<BlockJob> query_block_jobs(Client& qmp, Deadline deadline);

// JobInfo
struct JobInfo {
  std::string id;
  std::string type;
  std::string status;
  std::int64_t current_progress = 0;
  std::int64_t total_progress = 0;
  std::optional<std::string> error;
};
std::vector<JobInfo> parse_jobs(const Json& reply);
std::vector<JobInfo> query_jobs(Client& qmp, Deadline deadline);

// ---- migration -----------------------------------------------------------

void migrate(Client& qmp, std::string_view uri, Deadline deadline, bool resume = false);
void migrate_set_capabilities(Client& qmp,
                              const std::vector<std::pair<MigrationCapability, bool>>& caps,
                              Deadline deadline);

struct MigrationParameters {
  std::optional<std::int64_t> max_bandwidth;   // bytes per second
  std::optional<std::int64_t> downtime_limit;  // milliseconds
  std::optional<std::int64_t> multifd_channels;
  std::optional<MultifdCompression> multifd_compression;
  std::optional<std::int64_t> multifd_zstd_level;
  std::optional<std::int64_t> xbzrle_cache_size;  // bytes
  std::optional<std::int64_t> max_postcopy_bandwidth;
  std::optional<std::int64_t> cpu_throttle_initial;
  std::optional<std::int64_t> cpu_throttle_increment;
  std::optional<bool> cpu_throttle_tailslow;
  std::optional<std::int64_t> max_cpu_throttle;
  std::optional<std::string> tls_creds;
  std::optional<std::string> tls_hostname;
};
Json to_arguments(const MigrationParameters& params);
void migrate_set_parameters(Client& qmp, const MigrationParameters& params, Deadline deadline);

// MigrationStats
struct MigrationRam {
  std::int64_t transferred = 0;
  std::int64_t remaining = 0;
  std::int64_t total = 0;
  std::int64_t dirty_pages_rate = 0;
  std::int64_t dirty_sync_count = 0;
  double mbps = 0;
};

// MigrationInfo; status is "none" before the first migration.
struct MigrationInfo {
  std::string status = "none";
  std::optional<MigrationRam> ram;
  std::optional<std::int64_t> total_time;  // ms
  std::optional<std::int64_t> expected_downtime;
  std::optional<std::int64_t> downtime;
  std::optional<std::int64_t> setup_time;
  std::optional<std::int64_t> cpu_throttle_percentage;
  std::optional<std::string> error_desc;
};
MigrationInfo parse_migration_info(const Json& reply);
MigrationInfo query_migrate(Client& qmp, Deadline deadline);

// ---- misc ----------------------------------------------------------------

// Runs an HMP command line (debugging and tests, e.g. "qemu-io drive0 'write 0 1M'").
std::string human_monitor_command(Client& qmp, std::string_view command_line, Deadline deadline);
void quit(Client& qmp, Deadline deadline);

}  // namespace vmshift::qmp
