// A real qemu-system-x86_64 for integration tests, reachable over QMP.
//
// KVM when /dev/kvm is usable, TCG otherwise. The process is killed when the
// object is destroyed (and with the test binary, through PR_SET_PDEATHSIG),
// also when the test fails.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/deadline.h"
#include "base/subprocess.h"
#include "qmp/client.h"
#include "support/temp_dir.h"

namespace vmshift::testing {

// The full path of a program the test needs, or a thrown error that names
// the Debian package to install (scripts/setup installs them all).
std::string require_program(const std::string& name, const std::string& debian_package);

// Runs a program to completion with a deadline; throws with its stderr on failure.
RunResult run_tool(const Argv& argv, std::chrono::seconds limit = std::chrono::seconds(120));

// A file of the test guest (docs/guest.md) in the build tree: "vmlinuz" or
// "initrd.img"; throws saying how to build it if it is missing.
std::string guest_image_file(const std::string& name);

class QemuProcess {
 public:
  struct Options {
    std::vector<std::string> extra_args;  // devices, -blockdev, -incoming, ...
    bool start_paused = true;             // -S
    std::string memory = "64M";
    std::string name = "vm";
    // Serial console appended to this file (instead of none).
    std::optional<std::string> serial_file;
  };

  // Starts QEMU with a QMP socket in dir and connects (deadline: 60 s).
  QemuProcess(const TempDir& dir, Options options);
  ~QemuProcess();

  qmp::Client& qmp() { return *qmp_; }
  const std::string& qmp_socket() const { return socket_; }
  std::string log() const;  // QEMU's stderr so far

  // Sends "quit" and waits for QEMU to exit; kills it at the deadline.
  void quit(Deadline deadline);
  // Kills QEMU at once (SIGKILL), as a crash would.
  void kill() { process_->kill(); }

 private:
  std::string socket_;
  std::string log_path_;
  std::unique_ptr<Process> process_;
  std::unique_ptr<qmp::Client> qmp_;
};

// Options that boot the test guest writing its ledger (write_rate=50, plus
// `append`) on existing qcow2 images, attached as virtio disks with ids vd0,
// vd1, ...; its serial console is appended to `console`.
QemuProcess::Options test_guest_options(const std::string& console,
                                        const std::vector<std::string>& images,
                                        const std::string& append = "");

}  // namespace vmshift::testing
