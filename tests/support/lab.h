// A lab of simulated libvirt hosts (scripts/lab) for tests.
//
// Each Lab gets its own directory under $VMSHIFT_TEST_LAB_BASE (set by
// tests/lab/run-lab-test, which takes down every lab after the test binary
// ends, also when it crashed) and its own namespace prefix. The destructor
// takes the lab down.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "base/subprocess.h"

namespace vmshift::testing {

class Lab {
 public:
  explicit Lab(const std::string& label);
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  // Runs scripts/lab with this lab's --dir; throws with its output on failure.
  RunResult run(const Argv& args, std::chrono::seconds limit = std::chrono::seconds(300),
                const std::vector<std::string>& env = {});
  // As run(), but returns the result whatever the exit status.
  RunResult try_run(const Argv& args, std::chrono::seconds limit = std::chrono::seconds(300),
                    const std::vector<std::string>& env = {});

  void up(int hosts = 2, const std::string& link_rate = "");
  void down();

  const std::string& dir() const { return dir_; }
  const std::string& name() const { return name_; }
  std::string uri(const std::string& host) const;
  std::string console(const std::string& guest) const {
    return dir_ + "/consoles/" + guest + ".log";
  }

  // virsh against a host, from the root namespace.
  std::string virsh(const std::string& host, const Argv& args);
  // Waits (60 s at most) until a guest has acknowledged more writes on a
  // disk than it had; a test failure if it does not.
  void expect_writes_continue(const std::string& guest, int disk = 0);
  // `lab verify`: a test failure unless every disk has acknowledged writes
  // and none was lost.
  void expect_verified(const std::string& guest, int disks = 1);
  // A command inside a host's namespaces.
  RunResult in_host(const std::string& host, const Argv& args,
                    std::chrono::seconds limit = std::chrono::seconds(120));

 private:
  std::string dir_;
  std::string name_;
  bool up_ = false;
};

// What a lab could leave behind on the machine.
struct SystemState {
  std::set<std::string> netns;
  std::set<std::string> loop_devices;
  std::set<std::string> mounts;     // mount points in this mount namespace
  std::set<std::string> processes;  // "pid comm" of libvirtd, virtlogd, qemu (not zombies)
  bool operator==(const SystemState&) const = default;
  std::string diff(const SystemState& after) const;
};
SystemState system_state();

std::string source_root();
std::string build_root();

// The highest "VMSHIFT ACK disk=D seq=S" in a console log, or 0.
long long last_ack(const std::string& console, int disk = 0);

}  // namespace vmshift::testing
