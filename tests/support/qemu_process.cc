#include "support/qemu_process.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "base/error.h"
#include "hosts/accel.h"
#include "qmp/commands.h"
#include "support/lab.h"

namespace vmshift::testing {

std::string require_program(const std::string& name, const std::string& debian_package) {
  if (auto path = find_program(name)) return *path;
  throw std::runtime_error(fmt::format(
      "'{}' is not installed: this test needs a real one. Install the Debian package '{}' "
      "(scripts/setup installs everything the tests need).",
      name, debian_package));
}

RunResult run_tool(const Argv& argv, std::chrono::seconds limit) {
  return run_checked(argv, Deadline::after(limit));
}

QemuProcess::QemuProcess(const TempDir& dir, Options options) {
  std::string qemu = require_program("qemu-system-x86_64", "qemu-system-x86");
  socket_ = dir.file(options.name + ".qmp");
  log_path_ = dir.file(options.name + ".log");
  auto accel = hosts::local_accelerator();
  Argv argv = {qemu,
               "-name",
               options.name,
               "-machine",
               fmt::format("q35,accel={}", hosts::to_string(accel)),
               "-m",
               options.memory,
               "-nodefaults",
               "-display",
               "none",
               "-qmp",
               fmt::format("unix:{},server=on,wait=off", socket_)};
  if (options.serial_file) {
    argv.insert(argv.end(),
                {"-chardev", fmt::format("file,id=serial0,path={},append=on", *options.serial_file),
                 "-serial", "chardev:serial0"});
  } else {
    argv.insert(argv.end(), {"-serial", "none"});
  }
  if (options.start_paused) argv.push_back("-S");
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());

  SpawnOptions spawn_options;
  spawn_options.stdout_file = log_path_;
  spawn_options.stderr_file = log_path_;
  spawn_options.kill_with_parent = true;
  process_ = std::make_unique<Process>(spawn(argv, spawn_options));

  qmp::ClientOptions client_options;
  client_options.name = options.name;
  qmp_ = std::make_unique<qmp::Client>(client_options);
  auto deadline = Deadline::after(std::chrono::seconds(60));
  try {
    // QEMU may still be starting; if it dies instead, say why.
    while (!std::filesystem::exists(socket_) && process_->running() && !deadline.expired())
      process_->wait(Deadline::after(std::chrono::milliseconds(20)));
    if (!process_->running())
      throw std::runtime_error(fmt::format("QEMU exited at start-up: {}\n{}",
                                           process_->wait(deadline)->describe(), log()));
    qmp_->connect(socket_, deadline);
  } catch (const Error& e) {
    throw std::runtime_error(fmt::format("cannot start QEMU ({}): {}\nQEMU said:\n{}",
                                         describe_argv(argv), e.what(), log()));
  }
}

QemuProcess::~QemuProcess() {
  qmp_.reset();
  process_.reset();  // kills QEMU if it still runs
}

std::string QemuProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void QemuProcess::quit(Deadline deadline) {
  try {
    qmp::quit(*qmp_, deadline);
  } catch (const Error& e) {
    // QEMU may close the socket before its reply arrives.
    if (e.code() != ErrorCode::kConnection) throw;
  }
  if (!process_->wait(deadline)) process_->kill();
  qmp_->close();
}

std::string guest_image_file(const std::string& name) {
  std::string path = build_root() + "/src/ledger/" + name;
  if (!std::filesystem::exists(path))
    throw std::runtime_error(path + " is missing: build the test guest (ninja -C " + build_root() +
                             ", or scripts/guest-image)");
  return path;
}

QemuProcess::Options test_guest_options(const std::string& console,
                                        const std::vector<std::string>& images,
                                        const std::string& append) {
  QemuProcess::Options o;
  o.name = "guest";
  o.memory = "192M";
  o.start_paused = false;
  o.serial_file = console;
  o.extra_args = {"-kernel",   guest_image_file("vmlinuz"),
                  "-initrd",   guest_image_file("initrd.img"),
                  "-append",   "console=ttyS0 panic=-1 quiet vmshift.write_rate=50 " + append,
                  "-no-reboot"};
  for (std::size_t i = 0; i < images.size(); ++i) {
    std::string node = fmt::format("disk{}", i);
    o.extra_args.insert(
        o.extra_args.end(),
        {"-blockdev",
         qmp::image_node({.node_name = node, .filename = images[i], .cache_direct = true}).dump(),
         "-device", fmt::format("virtio-blk-pci,drive={},id=vd{}", node, i)});
  }
  return o;
}

}  // namespace vmshift::testing
