// vmshift move-storage: moving a running VM's disks on its host.
#include "cli/storage_commands.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>

#include "base/bandwidth.h"
#include "base/error.h"
#include "base/format.h"
#include "cli/command.h"
#include "cli/job_commands.h"
#include "core/preflight.h"
#include "core/runner.h"
#include "hosts/libvirt.h"

namespace vmshift::cli {

namespace {

// Where the VM is: --qmp, --host, or the one inventory host that has it.
core::GuestSpec resolve_guest(const MoveStorageArgs& a, const hosts::Inventory& inv) {
  if (a.qmp) return core::GuestSpec{"qmp", "local", a.vm.value_or(""), *a.qmp};
  if (!a.vm) throw Error(ErrorCode::kInvalidArgument, "name the VM (or give --qmp SOCKET)");
  if (a.host) {
    inv.host(*a.host);
    return core::GuestSpec{"libvirt", *a.host, *a.vm, ""};
  }
  return core::GuestSpec{"libvirt", core::find_vm_host(inv, *a.vm), *a.vm, ""};
}

}  // namespace

migrate::LiveStorageOptions move_storage_options(const MoveStorageArgs& a) {
  migrate::LiveStorageOptions o;
  o.to_dir = a.to;
  for (const auto& d : a.disks) {
    auto eq = d.find('=');
    if (eq == 0)
      throw Error(ErrorCode::kInvalidArgument, fmt::format("--disk '{}' names no disk", d));
    o.disks.emplace_back(d.substr(0, eq), eq == std::string::npos ? "" : d.substr(eq + 1));
  }
  o.bandwidth = bytes_per_s_from_mib(a.bandwidth_mib, "--bandwidth");
  o.sync_writes = a.sync_writes;
  o.keep_source = a.keep_source;
  o.force = a.force;
  o.shallow = a.shallow;
  o.progress_timeout = std::chrono::seconds(a.progress_timeout);
  return o;
}

int move_storage(const MoveStorageArgs& a, const hosts::Inventory& inv,
                 const std::string& store_path, const std::atomic<bool>* interrupted) {
  core::GuestSpec spec = resolve_guest(a, inv);
  migrate::LiveStorageOptions options = move_storage_options(a);
  // The checks, before anything changes: a refusal leaves no job behind.
  {
    std::unique_ptr<guest::Guest> g = core::open_guest(spec, inv);
    migrate::LiveStoragePlan plan;
    try {
      plan = migrate::plan_live_storage(*g, options, core::move_storage_in_use(inv, spec, options));
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("refused: {}. Nothing was changed.", e.what()));
    }
    if (!a.json) {
      fmt::print(stderr, "moving {} disk{} of {}:\n", plan.moves.size(),
                 plan.moves.size() == 1 ? "" : "s", g->describe());
      for (const auto& m : plan.moves)
        fmt::print(stderr, "  {}: {} -> {} ({}, {} to copy{})\n", m.target, m.source, m.dest,
                   m.format, human_bytes(m.need),
                   m.replace_existing ? "; replaces the file there (--force)" : "");
      // The job itself reports its notes as it starts; a detached one cannot.
      if (a.detach)
        for (const auto& n : plan.notes) fmt::print(stderr, "  note: {}\n", n);
    }
  }
  std::string uuid = core::guest_uuid(spec, inv);
  core::JobStore store = core::JobStore::open(store_path);
  std::int64_t id = core::create_live_storage_job(store, spec, uuid, options);
  return start_job(store_path, id, inv, a.json, a.detach, a.queue_timeout, interrupted);
}

void add_move_storage_options(CLI::App* cmd, MoveStorageArgs& a) {
  cmd->add_option("VM", a.vm, "The VM (a libvirt domain name)");
  cmd->add_option("--host", a.host, "The inventory host of the VM (default: the one that has it)");
  cmd->add_option("--qmp", a.qmp, "A bare QEMU's QMP socket, instead of a libvirt VM");
  cmd->add_option("--to", a.to, "Move every disk (or those named with --disk) into DIR");
  cmd->add_option("--disk", a.disks,
                  "TARGET=PATH: move this disk to PATH (repeatable); "
                  "TARGET alone with --to");
  cmd->add_option("--bandwidth", a.bandwidth_mib, "Copy at most this many MiB/s");
  cmd->add_flag("--sync-writes", a.sync_writes,
                "Write-blocking copy: converges even when the guest writes faster");
  cmd->add_flag("--keep-source", a.keep_source, "Keep the source files after the move");
  cmd->add_flag("--force", a.force, "Replace existing destination files (never the VM's own)");
  cmd->add_flag("--shallow", a.shallow,
                "Copy only the top layer; the backing chain stays where it is");
  cmd->add_option("--progress-timeout", a.progress_timeout,
                  "Fail if the copy makes no progress for this many seconds")
      ->capture_default_str();
  cmd->add_option("--queue-timeout", a.queue_timeout,
                  "Give up after waiting this many seconds for a free slot")
      ->capture_default_str();
  cmd->add_flag("--detach", a.detach, "Run in the background; print the job id");
  cmd->add_flag("--json", a.json, "Progress as one JSON object per line");
}

void register_storage_commands(CLI::App& app, Registry& registry) {
  auto a = std::make_shared<MoveStorageArgs>();
  auto* move_cmd = app.add_subcommand(
      "move-storage", "Move the disks of a running VM to another location on its host, live");
  add_move_storage_options(move_cmd, *a);
  registry.on(move_cmd, [a](Session& s) {
    s.jobs();
    return move_storage(*a, s.inventory(), s.store_path(), s.interrupted());
  });
}

}  // namespace vmshift::cli
