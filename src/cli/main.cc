// vmshift: move running QEMU/KVM virtual machines and their disks.
#include <fmt/format.h>
#include <libvirt/libvirt.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "cli/copy_commands.h"
#include "cli/inventory_commands.h"
#include "cli/job_commands.h"
#include "cli/migrate_commands.h"
#include "core/job_store.h"
#include "core/runner.h"
#include "hosts/accel.h"
#include "hosts/inventory.h"
#include "qmp/client.h"
#include "qmp/json.h"

#ifndef VMSHIFT_VERSION
#define VMSHIFT_VERSION "unknown"
#endif

namespace vmshift::cli {
namespace {

std::atomic<bool> interrupted{false};

void on_interrupt(int) { interrupted.store(true); }

std::string version_of(unsigned long v) {
  return fmt::format("{}.{}.{}", v / 1000000, (v / 1000) % 1000, v % 1000);
}

void print_version() {
  fmt::print("vmshift {}\n", VMSHIFT_VERSION);
  unsigned long lib = 0;
  if (virGetVersion(&lib, nullptr, nullptr) == 0)
    fmt::print("libvirt library {}\n", version_of(lib));
  try {
    Argv argv = {"qemu-system-x86_64", "--version"};
    RunResult r = run_checked(argv, Deadline::after(std::chrono::seconds(10)));
    fmt::print("{}\n", r.out.substr(0, r.out.find('\n')));
  } catch (const Error& e) {
    fmt::print("QEMU: not usable: {}\n", e.what());
  }
  fmt::print("accelerator: {}\n", hosts::describe_local_accelerator());
}

int run_qmp(const std::string& socket, const std::string& command, const std::string& args_text,
            double timeout_s) {
  auto deadline = Deadline::after(std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(timeout_s)));
  qmp::Json args;
  if (!args_text.empty()) {
    try {
      args = qmp::Json::parse(args_text);
    } catch (const Error& e) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("ARGUMENTS is not valid JSON: {}", e.what()));
    }
  }
  qmp::Client client;
  client.connect(socket, deadline);
  qmp::Json result = client.execute(command, args, deadline);
  fmt::print("{}\n", result.dump());
  return 0;
}

// Every command that touches jobs first finishes or undoes the jobs whose
// vmshift process died.
void recover(core::JobStore& store, const hosts::Inventory& inv) {
  for (const auto& line : core::recover_stale_jobs(store, inv))
    fmt::print(stderr, "vmshift: {}\n", line);
}

// The options `plan` and `migrate` share.
void add_migrate_options(CLI::App* cmd, MigrateArgs& a) {
  cmd->add_option("VM", a.vm, "The VM (a libvirt domain name)")->required();
  cmd->add_option("--to", a.to, "The destination host (from the inventory)")->required();
  cmd->add_option("--host", a.host, "The VM's host now (default: the one that has it)");
  cmd->add_option("--type", a.type,
                  "Force a transfer type: live, live-vsm, qsm, quick, network (default: chosen "
                  "from the VM's state and storage)");
  cmd->add_option("--storage", a.storage,
                  "Copy the disks into this storage location of the destination");
  cmd->add_option("--disk", a.disks, "TARGET=PATH: copy this disk to PATH on the destination");
  cmd->add_option("--bandwidth", a.bandwidth_mib, "At most this many MiB/s");
  cmd->add_option("--compress", a.compress,
                  "Compress memory: xbzrle (default), mt (multi-threaded), or zstd over multifd "
                  "(--parallel; libvirt 9.4+)")
      ->expected(0, 1)
      ->default_str("");
  cmd->add_option("--parallel", a.parallel, "Memory over N connections (multifd)");
  cmd->add_flag("--auto-converge", a.auto_converge,
                "Slow the guest's CPUs down if it dirties memory faster than the link carries");
  cmd->add_flag("--postcopy", a.postcopy,
                "Allow switching to post-copy (the VM runs on the destination while the rest of "
                "its memory follows)");
  cmd->add_option("--max-downtime", a.max_downtime_ms,
                  "The longest pause at the switch-over, ms (QEMU's default: 300)");
  cmd->add_option("--timeout-per-gib", a.timeout_per_gib,
                  "Give up (see --timeout-action) after this many seconds per GiB to move");
  cmd->add_option("--progress-timeout", a.progress_timeout,
                  "Give up (see --timeout-action) after this many seconds without progress")
      ->capture_default_str();
  cmd->add_option("--timeout-action", a.timeout_action,
                  "On a timeout: abort (the VM stays on the source), postcopy, or suspend (pause "
                  "the guest so the rest converges)")
      ->capture_default_str();
  cmd->add_flag("--tls", a.tls, "Encrypt the migration with libvirt's TLS");
  cmd->add_flag("--keep-source", a.keep_source, "Keep the source's disk files after a copy");
  cmd->add_flag("--force", a.force, "Replace existing destination files");
  cmd->add_flag("--shallow", a.shallow,
                "Copy only the disks' top layers; their backing files must be on the "
                "destination already (shared storage)");
  cmd->add_flag("--verify", a.verify,
                "qsm, network: compare every copy with its source (checksums) before using it");
  cmd->add_flag("--start", a.start, "network: start the VM on the destination afterwards");
  cmd->add_flag("--no-measure", a.no_measure,
                "Predict without measuring the guest's dirty rate and disk writes first (saves "
                "about a second; the prediction then assumes an idle guest)");
  cmd->add_flag("--json", a.json, "JSON output");
}

}  // namespace
}  // namespace vmshift::cli

int main(int argc, char** argv) {
  using namespace vmshift;
  CLI::App app{"vmshift: move running QEMU/KVM virtual machines and their disks"};
  app.require_subcommand(1);
  std::optional<std::string> config;
  app.add_option("--config", config,
                 "Inventory file (default: $VMSHIFT_CONFIG, ~/.config/vmshift/config.toml, "
                 "/etc/vmshift/config.toml)");
  bool json = false;

  bool debug = false;
  app.add_flag("--debug", debug,
               "Trace every libvirt call (arguments, duration) to stderr; as VMSHIFT_DEBUG=1");
  auto* version = app.add_subcommand("version", "Show versions of vmshift, libvirt and QEMU");

  auto* qmp_cmd = app.add_subcommand(
      "qmp", "Run one QMP command on a bare QEMU's QMP socket and print the reply");
  std::string socket, command, args_text;
  double timeout_s = 30;
  qmp_cmd->add_option("--socket", socket, "QEMU's QMP UNIX socket")->required();
  qmp_cmd->add_option("--timeout", timeout_s, "Seconds to wait for connection and reply")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  qmp_cmd->add_option("COMMAND", command, "QMP command, e.g. query-status")->required();
  qmp_cmd->add_option("ARGUMENTS", args_text, "Arguments as a JSON object");

  auto* hosts_cmd = app.add_subcommand(
      "hosts", "List the inventory's hosts: reachability, CPU, free memory, free space");
  hosts_cmd->add_flag("--json", json, "One JSON document instead of a table");
  auto* baseline_cmd = hosts_cmd->add_subcommand(
      "baseline", "A CPU model every host supports, and VMs whose CPU cannot move to some host");
  baseline_cmd->add_flag("--json", json, "One JSON document");
  auto* vms_cmd = app.add_subcommand("vms", "List VMs with their state and disks");
  std::optional<std::string> vms_host;
  vms_cmd->add_option("--host", vms_host, "Only this host");
  vms_cmd->add_flag("--json", json, "One JSON document instead of a table");

  auto* jobs_cmd = app.add_subcommand("jobs", "List jobs (newest first), or act on one");
  jobs_cmd->add_flag("--json", json, "JSON instead of a table");
  int limit = 50;
  jobs_cmd->add_option("--limit", limit, "How many jobs to list")->capture_default_str();
  std::int64_t job_id = 0;
  auto* show_cmd = jobs_cmd->add_subcommand("show", "Show a job: state, steps, progress, result");
  show_cmd->add_option("ID", job_id)->required();
  show_cmd->add_flag("--json", json);
  auto* cancel_cmd = jobs_cmd->add_subcommand("cancel", "Cancel a queued or running job");
  cancel_cmd->add_option("ID", job_id)->required();
  auto* wait_cmd = jobs_cmd->add_subcommand("wait", "Wait until a job ends; exit 0 if completed");
  wait_cmd->add_option("ID", job_id)->required();
  int wait_timeout = 86400;
  wait_cmd->add_option("--timeout", wait_timeout, "Seconds to wait")->capture_default_str();
  wait_cmd->add_flag("--json", json);
  auto* resume_cmd = jobs_cmd->add_subcommand("resume", "Continue a failed copy where it stopped");
  resume_cmd->add_option("ID", job_id)->required();
  bool resume_detach = false;
  resume_cmd->add_flag("--detach", resume_detach, "Run in the background");
  resume_cmd->add_flag("--json", json);
  auto* run_cmd = jobs_cmd->add_subcommand("run", "Run a queued job in this process");
  run_cmd->group("");  // internal: what --detach starts
  run_cmd->add_option("ID", job_id)->required();
  run_cmd->add_flag("--json", json);
  int run_queue_timeout = 86400;
  run_cmd->add_option("--queue-timeout", run_queue_timeout);

  cli::MoveStorageArgs ms;
  auto* move_cmd = app.add_subcommand(
      "move-storage", "Move the disks of a running VM to another location on its host, live");
  move_cmd->add_option("VM", ms.vm, "The VM (a libvirt domain name)");
  move_cmd->add_option("--host", ms.host,
                       "The inventory host of the VM (default: the one that has it)");
  move_cmd->add_option("--qmp", ms.qmp, "A bare QEMU's QMP socket, instead of a libvirt VM");
  move_cmd->add_option("--to", ms.to, "Move every disk (or those named with --disk) into DIR");
  move_cmd->add_option("--disk", ms.disks,
                       "TARGET=PATH: move this disk to PATH (repeatable); "
                       "TARGET alone with --to");
  move_cmd->add_option("--bandwidth", ms.bandwidth_mib, "Copy at most this many MiB/s");
  move_cmd->add_flag("--sync-writes", ms.sync_writes,
                     "Write-blocking copy: converges even when the guest writes faster");
  move_cmd->add_flag("--keep-source", ms.keep_source, "Keep the source files after the move");
  move_cmd->add_flag("--force", ms.force,
                     "Replace existing destination files (never the VM's own)");
  move_cmd->add_flag("--shallow", ms.shallow,
                     "Copy only the top layer; the backing chain stays where it is");
  move_cmd
      ->add_option("--progress-timeout", ms.progress_timeout,
                   "Fail if the copy makes no progress for this many seconds")
      ->capture_default_str();
  move_cmd
      ->add_option("--queue-timeout", ms.queue_timeout,
                   "Give up after waiting this many seconds for a free slot")
      ->capture_default_str();
  move_cmd->add_flag("--detach", ms.detach, "Run in the background; print the job id");
  move_cmd->add_flag("--json", ms.json, "Progress as one JSON object per line");

  cli::MigrateArgs ma;
  auto* plan_cmd = app.add_subcommand(
      "plan", "Show how a VM would move to a host: the transfer type, every check, a prediction");
  cli::add_migrate_options(plan_cmd, ma);
  auto* migrate_cmd =
      app.add_subcommand("migrate", "Move a VM to another host, or its disks (--type qsm)");
  cli::add_migrate_options(migrate_cmd, ma);
  migrate_cmd->add_flag("--detach", ma.detach, "Run in the background; print the job id");
  migrate_cmd
      ->add_option("--queue-timeout", ma.queue_timeout,
                   "Give up after waiting this many seconds for a free slot")
      ->capture_default_str();
  cli::CopyArgs ca;
  auto* copy_cmd = app.add_subcommand(
      "copy", "Copy an image file between hosts (or on one): sparse, checksummed, resumable");
  copy_cmd->add_option("FROM", ca.from, "HOST:/PATH of the source")->required();
  copy_cmd->add_option("TO", ca.to, "HOST:/PATH of the copy")->required();
  copy_cmd->add_option("--bandwidth", ca.bandwidth_mib, "At most this many MiB/s of data");
  copy_cmd->add_option("--chunk-mib", ca.chunk_mib, "Chunk size (checksummed, resumable unit)")
      ->capture_default_str();
  copy_cmd->add_flag("--verify", ca.verify, "Compare source and copy end to end afterwards");
  copy_cmd->add_flag("--force", ca.force, "Replace an existing destination file");
  copy_cmd->add_flag("--detach", ca.detach, "Run in the background; print the job id");
  copy_cmd->add_flag("--json", ca.json, "Progress as one JSON object per line");
  auto* compare_cmd =
      app.add_subcommand("compare", "Compare two image files chunk by chunk (checksums)");
  std::string cmp_a, cmp_b;
  int cmp_chunk = 64;
  compare_cmd->add_option("A", cmp_a, "HOST:/PATH")->required();
  compare_cmd->add_option("B", cmp_b, "HOST:/PATH")->required();
  compare_cmd->add_option("--chunk-mib", cmp_chunk, "Chunk size")->capture_default_str();
  compare_cmd->add_flag("--json", json, "One JSON document");

  auto* rate_cmd = app.add_subcommand("rate", "Rank every host as a destination for a VM");
  std::string rate_vm;
  std::optional<std::string> rate_host;
  rate_cmd->add_option("VM", rate_vm, "The VM")->required();
  rate_cmd->add_option("--host", rate_host, "The VM's host now (default: the one that has it)");
  rate_cmd->add_flag("--json", json, "JSON instead of a table");

  CLI11_PARSE(app, argc, argv);
  if (debug) vmshift::log::set_level(vmshift::log::Level::kDebug);

  try {
    if (*version) {
      cli::print_version();
      return 0;
    }
    if (*qmp_cmd) return cli::run_qmp(socket, command, args_text, timeout_s);

    hosts::Inventory inv = hosts::Inventory::load(config);
    if (*baseline_cmd) return cli::hosts_baseline(inv, json);
    if (*hosts_cmd) return cli::list_hosts(inv, json);
    if (*compare_cmd) return cli::compare(cmp_a, cmp_b, cmp_chunk, inv, json);
    if (*vms_cmd) return cli::list_vms(inv, vms_host, json);

    std::string store_path = core::JobStore::default_path();
    core::JobStore store = core::JobStore::open(store_path);
    cli::recover(store, inv);
    struct sigaction sa {};
    sa.sa_handler = cli::on_interrupt;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    // The job process has no terminal to lose: a stray SIGHUP must not stop
    // a move half-way. (Commands that follow a job catch it themselves.)
    if (*run_cmd) signal(SIGHUP, SIG_IGN);
    if (*jobs_cmd) {
      if (*show_cmd) return cli::jobs_show(store, job_id, json);
      if (*cancel_cmd) return cli::jobs_cancel(store, job_id);
      if (*wait_cmd) return cli::jobs_wait(store, job_id, wait_timeout, json);
      if (*resume_cmd)
        return cli::jobs_resume(store_path, job_id, inv, json, resume_detach, &cli::interrupted);
      if (*run_cmd)
        return cli::jobs_run(store_path, job_id, inv, json, run_queue_timeout, &cli::interrupted);
      return cli::jobs_list(store, json, limit);
    }
    if (*move_cmd) return cli::move_storage(ms, inv, store_path, &cli::interrupted);
    if (*plan_cmd) return cli::plan(ma, inv, store_path);
    if (*migrate_cmd) return cli::migrate(ma, inv, store_path, &cli::interrupted);
    if (*rate_cmd) return cli::rate(rate_vm, rate_host, inv, store_path, json);
    if (*copy_cmd) return cli::copy(ca, inv, store_path, &cli::interrupted);
  } catch (const Error& e) {
    std::fprintf(stderr, "vmshift: %s\n", e.what());
    return 1;
  }
  return 0;
}
