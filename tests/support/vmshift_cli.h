// Running the real vmshift command line against a lab, for lab tests: its
// own job store per test, the lab's inventory, JSON output parsed, and
// libvirt's view of guests on any lab host.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/json.h"
#include "base/subprocess.h"
#include "base/unique_fd.h"
#include "support/lab.h"
#include "support/temp_dir.h"

namespace vmshift::testing {

class VmshiftCli {
 public:
  explicit VmshiftCli(Lab& lab) : lab_(lab), state_(std::make_unique<TempDir>("vmss")) {}

  const std::string& state_dir() const { return state_->path(); }
  SpawnOptions options(const std::vector<std::string>& extra_env = {}) const;
  RunResult run(const Argv& args, const std::vector<std::string>& extra_env = {},
                std::chrono::seconds limit = std::chrono::seconds(300)) const;
  Process start(const Argv& args, const std::vector<std::string>& extra_env = {}) const;
  Json job(std::int64_t id) const;  // jobs show ID --json
  Json jobs() const;                // jobs --json
  // Runs ARGS... --detach --json; returns the job id.
  std::int64_t detach(const Argv& args, const std::vector<std::string>& extra_env = {}) const;
  std::string job_log(std::int64_t id) const;
  // Kills (SIGKILL) the process that runs job id, the holder of its lease
  // (what a crash does: the foreground command only shows the job).
  // Returns its pid.
  pid_t kill_job_process(std::int64_t id) const;

 private:
  Lab& lab_;
  std::unique_ptr<TempDir> state_;
};

std::string vmshift_bin();
// Reads fd (a process's output) until text appears or the deadline passes.
bool wait_for_text(const UniqueFd& fd, const std::string& text, Deadline deadline);
std::string read_text(const std::string& path);
// The JSON objects of a --json run, one per line.
std::vector<Json> json_lines(const std::string& out);
std::string step_state(const Json& job, const std::string& step);

// libvirt's view of a guest on a lab host.
std::string domstate(Lab& lab, const std::string& host, const std::string& guest);
// target -> source file (running, or the persistent definition).
std::map<std::string, std::string> live_disks(Lab& lab, const std::string& host,
                                              const std::string& guest, bool inactive = false);
// Whether a host has a VM of that name defined.
bool defined(Lab& lab, const std::string& host, const std::string& guest);

}  // namespace vmshift::testing
