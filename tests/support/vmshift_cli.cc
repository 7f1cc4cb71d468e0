#include "support/vmshift_cli.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace vmshift::testing {

std::string vmshift_bin() { return build_root() + "/src/cli/vmshift"; }

bool wait_for_text(const UniqueFd& fd, const std::string& text, Deadline deadline) {
  std::string seen;
  char buf[4096];
  while (!deadline.expired()) {
    pollfd p{.fd = fd.get(), .events = POLLIN, .revents = 0};
    int n = ::poll(&p, 1, deadline.poll_timeout_ms());
    if (n <= 0) continue;
    ssize_t r = ::read(fd.get(), buf, sizeof buf);
    if (r <= 0) return false;  // the process ended
    seen.append(buf, static_cast<std::size_t>(r));
    if (seen.find(text) != std::string::npos) return true;
  }
  return false;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

SpawnOptions VmshiftCli::options(const std::vector<std::string>& extra_env) const {
  SpawnOptions o;
  o.pipe_stdout = true;
  o.pipe_stderr = true;
  o.kill_with_parent = true;
  // The test's own variables win (e.g. another VMSHIFT_CONFIG).
  o.extra_env = extra_env;
  for (std::string d :
       {"VMSHIFT_CONFIG=" + lab_.dir() + "/vmshift.toml", "VMSHIFT_STATE_DIR=" + state_->path()}) {
    std::string name = d.substr(0, d.find('=') + 1);
    bool given = false;
    for (const auto& e : extra_env) given = given || e.rfind(name, 0) == 0;
    if (!given) o.extra_env.push_back(d);
  }
  return o;
}

RunResult VmshiftCli::run(const Argv& args, const std::vector<std::string>& extra_env,
                          std::chrono::seconds limit) const {
  Argv argv = {vmshift_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return vmshift::run(argv, Deadline::after(limit), options(extra_env));
}

Process VmshiftCli::start(const Argv& args, const std::vector<std::string>& extra_env) const {
  Argv argv = {vmshift_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(argv, options(extra_env));
}

Json VmshiftCli::job(std::int64_t id) const {
  RunResult r = run({"jobs", "show", std::to_string(id), "--json"});
  if (!r.status.success()) throw std::runtime_error("vmshift jobs show failed: " + r.err);
  return Json::parse(r.out);
}

Json VmshiftCli::jobs() const {
  RunResult r = run({"jobs", "--json"});
  if (!r.status.success()) throw std::runtime_error("vmshift jobs failed: " + r.err);
  return Json::parse(r.out);
}

std::int64_t VmshiftCli::detach(const Argv& args, const std::vector<std::string>& extra_env) const {
  Argv a = args;
  a.insert(a.end(), {"--detach", "--json"});
  RunResult r = run(a, extra_env);
  if (!r.status.success())
    throw std::runtime_error(fmt::format("{} --detach failed: {}{}", args.at(0), r.out, r.err));
  return json_lines(r.out).back().get_int("job");
}

std::string VmshiftCli::job_log(std::int64_t id) const {
  return read_text(fmt::format("{}/job-{}.log", state_->path(), id));
}

pid_t VmshiftCli::kill_job_process(std::int64_t id) const {
  std::optional<std::int64_t> pid = job(id).find_int("pid");
  if (!pid || *pid <= 0) throw std::runtime_error(fmt::format("job {} has no process", id));
  if (::kill(static_cast<pid_t>(*pid), SIGKILL) != 0)
    throw std::runtime_error(fmt::format("cannot kill process {} of job {}", *pid, id));
  return static_cast<pid_t>(*pid);
}

std::vector<Json> json_lines(const std::string& out) {
  std::vector<Json> all;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line.front() == '{') all.push_back(Json::parse(line));
  return all;
}

std::string step_state(const Json& job, const std::string& step) {
  for (const auto& s : job.get("steps").items())
    if (s.get_string("name") == step) return s.get_string("state");
  return "";
}

std::string domstate(Lab& lab, const std::string& host, const std::string& guest) {
  std::string s = lab.virsh(host, {"domstate", guest});
  return s.substr(0, s.find('\n'));
}

std::map<std::string, std::string> live_disks(Lab& lab, const std::string& host,
                                              const std::string& guest, bool inactive) {
  Argv a = {"domblklist", guest};
  if (inactive) a.push_back("--inactive");
  std::istringstream in(lab.virsh(host, a));
  std::map<std::string, std::string> disks;
  std::string target, source;
  while (in >> target >> source)
    if (target.rfind("vd", 0) == 0) disks[target] = source;
  return disks;
}

bool defined(Lab& lab, const std::string& host, const std::string& guest) {
  RunResult r = vmshift::run(Argv{"virsh", "--quiet", "-c", lab.uri(host), "dominfo", guest},
                             Deadline::after(std::chrono::seconds(30)));
  return r.status.success();
}

}  // namespace vmshift::testing
