// vmshift: move running QEMU/KVM virtual machines and their disks.
// Each command group registers its subcommands (cli/*_commands.cc); main
// parses the command line and runs the one chosen.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/log.h"
#include "cli/command.h"

int main(int argc, char** argv) {
  using namespace vmshift;
  CLI::App app{"vmshift: move running QEMU/KVM virtual machines and their disks"};
  app.require_subcommand(1);
  std::optional<std::string> config;
  app.add_option("--config", config,
                 "Inventory file (default: $VMSHIFT_CONFIG, ~/.config/vmshift/config.toml, "
                 "/etc/vmshift/config.toml)");
  bool debug = false;
  app.add_flag("--debug", debug,
               "Trace every libvirt call (arguments, duration) to stderr; as VMSHIFT_DEBUG=1");
  cli::Registry registry;
  cli::register_commands(app, registry);

  CLI11_PARSE(app, argc, argv);
  if (debug) log::set_level(log::Level::kDebug);
  try {
    cli::Session session(config);
    return registry.dispatch(app, session);
  } catch (const Error& e) {
    std::fprintf(stderr, "vmshift: %s\n", e.what());
    return 1;
  }
}
