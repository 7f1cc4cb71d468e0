// vmshift: move running QEMU/KVM virtual machines and their disks.
#include <fmt/format.h>
#include <libvirt/libvirt.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/subprocess.h"
#include "cli/inventory_commands.h"
#include "hosts/accel.h"
#include "hosts/inventory.h"
#include "qmp/client.h"
#include "qmp/json.h"

#ifndef VMSHIFT_VERSION
#define VMSHIFT_VERSION "unknown"
#endif

namespace vmshift::cli {
namespace {

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

  auto* hosts_cmd = app.add_subcommand("hosts",
                                       "List the inventory's hosts: reachability, CPU, "
                                       "free memory, free space per storage location");
  hosts_cmd->add_flag("--json", json, "One JSON document instead of a table");
  auto* vms_cmd = app.add_subcommand("vms", "List VMs with their state and disks");
  std::optional<std::string> vms_host;
  vms_cmd->add_option("--host", vms_host, "Only this host");
  vms_cmd->add_flag("--json", json, "One JSON document instead of a table");

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

  CLI11_PARSE(app, argc, argv);
  try {
    if (*version) {
      cli::print_version();
      return 0;
    }
    if (*qmp_cmd) return cli::run_qmp(socket, command, args_text, timeout_s);
    if (*hosts_cmd) return cli::list_hosts(hosts::Inventory::load(config), json);
    if (*vms_cmd) return cli::list_vms(hosts::Inventory::load(config), vms_host, json);
  } catch (const Error& e) {
    std::fprintf(stderr, "vmshift: %s\n", e.what());
    return 1;
  }
  return 0;
}
