// vmshift version, vmshift qmp: commands that need no inventory.
#include <fmt/format.h>
#include <libvirt/libvirt.h>

#include <chrono>
#include <memory>
#include <string>

#include "base/error.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "cli/command.h"
#include "hosts/accel.h"
#include "qmp/client.h"

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
  Json args;
  if (!args_text.empty()) {
    try {
      args = Json::parse(args_text);
    } catch (const Error& e) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("ARGUMENTS is not valid JSON: {}", e.what()));
    }
  }
  qmp::Client client;
  client.connect(socket, deadline);
  Json result = client.execute(command, args, deadline);
  fmt::print("{}\n", result.dump());
  return 0;
}

struct QmpArgs {
  std::string socket, command, args_text;
  double timeout_s = 30;
};

}  // namespace

void register_tool_commands(CLI::App& app, Registry& registry) {
  auto* version = app.add_subcommand("version", "Show versions of vmshift, libvirt and QEMU");
  registry.on(version, [](Session&) {
    print_version();
    return 0;
  });

  auto q = std::make_shared<QmpArgs>();
  auto* qmp_cmd = app.add_subcommand(
      "qmp", "Run one QMP command on a bare QEMU's QMP socket and print the reply");
  qmp_cmd->add_option("--socket", q->socket, "QEMU's QMP UNIX socket")->required();
  qmp_cmd->add_option("--timeout", q->timeout_s, "Seconds to wait for connection and reply")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  qmp_cmd->add_option("COMMAND", q->command, "QMP command, e.g. query-status")->required();
  qmp_cmd->add_option("ARGUMENTS", q->args_text, "Arguments as a JSON object");
  registry.on(qmp_cmd,
              [q](Session&) { return run_qmp(q->socket, q->command, q->args_text, q->timeout_s); });
}

}  // namespace vmshift::cli
