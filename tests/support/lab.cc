#include "support/lab.h"

#include <dirent.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "base/error.h"
#include "ledger/ledger.h"
#include "support/wait.h"

#ifndef VMSHIFT_SOURCE_ROOT
#error "VMSHIFT_SOURCE_ROOT must be defined"
#endif
#ifndef VMSHIFT_BUILD_ROOT
#error "VMSHIFT_BUILD_ROOT must be defined"
#endif

namespace vmshift::testing {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string source_root() { return VMSHIFT_SOURCE_ROOT; }
std::string build_root() { return VMSHIFT_BUILD_ROOT; }

Lab::Lab(const std::string& label) {
  const char* base = std::getenv("VMSHIFT_TEST_LAB_BASE");
  if (base == nullptr)
    throw std::runtime_error(
        "VMSHIFT_TEST_LAB_BASE is not set: run lab tests through tests/lab/run-lab-test "
        "(meson test does), which cleans up every lab afterwards");
  dir_ = fmt::format("{}/{}", base, label);
  // Namespace names must not collide with a user's lab or a parallel run.
  name_ = fmt::format("vt{}-{}", ::getpid() % 100000, label.substr(0, 6));
}

Lab::~Lab() {
  try {
    down();
  } catch (const std::exception& e) {
    fmt::print(stderr, "lab {}: down failed: {}\n", dir_, e.what());
  }
}

RunResult Lab::try_run(const Argv& args, std::chrono::seconds limit,
                       const std::vector<std::string>& env) {
  Argv argv = {source_root() + "/scripts/lab", "--dir", dir_, "--name", name_};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions o;
  o.extra_env = env;
  o.extra_env.push_back("VMSHIFT_BUILD_DIR=" + build_root());
  return vmshift::run(argv, Deadline::after(limit), o);
}

RunResult Lab::run(const Argv& args, std::chrono::seconds limit,
                   const std::vector<std::string>& env) {
  RunResult r = try_run(args, limit, env);
  if (!r.status.success())
    throw std::runtime_error(fmt::format("scripts/lab {} {}:\n{}{}", describe_argv(args),
                                         r.status.describe(), r.out, r.err));
  return r;
}

void Lab::up(int hosts, const std::string& link_rate) {
  up_ = true;
  Argv args = {"up", "--hosts", std::to_string(hosts), "--local-size", "1G"};
  if (!link_rate.empty()) args.insert(args.end(), {"--link-rate", link_rate});
  run(args);
}

void Lab::down() {
  if (!up_) return;
  up_ = false;
  run({"down"}, std::chrono::seconds(120));
}

std::string Lab::uri(const std::string& host) const {
  return fmt::format("qemu+unix:///system?socket={}/hosts/{}/run/libvirt/libvirt-sock", dir_, host);
}

std::string Lab::virsh(const std::string& host, const Argv& args) {
  Argv argv = {"virsh", "--quiet", "-c", uri(host)};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_checked(argv, Deadline::after(std::chrono::seconds(120))).out;
}

RunResult Lab::in_host(const std::string& host, const Argv& args, std::chrono::seconds limit) {
  Argv argv = {"enter", host};
  argv.insert(argv.end(), args.begin(), args.end());
  return try_run(argv, limit);
}

SystemState system_state() {
  SystemState s;
  RunResult ns =
      vmshift::run(Argv{"ip", "netns", "list"}, Deadline::after(std::chrono::seconds(10)));
  std::istringstream nl(ns.out);
  for (std::string line; std::getline(nl, line);)
    if (!line.empty()) s.netns.insert(line.substr(0, line.find(' ')));
  RunResult loops = vmshift::run(Argv{"losetup", "-a"}, Deadline::after(std::chrono::seconds(10)));
  std::istringstream ll(loops.out);
  for (std::string line; std::getline(ll, line);)
    if (!line.empty()) s.loop_devices.insert(line);
  std::istringstream ml(read_file("/proc/self/mountinfo"));
  for (std::string line; std::getline(ml, line);) {
    std::istringstream f(line);
    std::string id, parent, devno, root, mountpoint;
    f >> id >> parent >> devno >> root >> mountpoint;
    // iproute2 makes /run/netns (and mounts each namespace under it) the
    // first time any namespace is added on the machine, and keeps the
    // directory mount for every later user: not the lab's to remove.
    if (mountpoint == "/run/netns") continue;
    s.mounts.insert(mountpoint);
  }
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) throw std::runtime_error("cannot read /proc");
  while (dirent* e = ::readdir(proc)) {
    std::string pid = e->d_name;
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = read_file("/proc/" + pid + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) continue;
    char state = stat[close + 2];
    std::string comm = stat.substr(stat.find('(') + 1, close - stat.find('(') - 1);
    if (state == 'Z') continue;
    if (comm == "libvirtd" || comm == "virtlogd" || comm.rfind("qemu-system", 0) == 0)
      s.processes.insert(pid + " " + comm);
  }
  ::closedir(proc);
  return s;
}

std::string SystemState::diff(const SystemState& after) const {
  std::string out;
  auto compare = [&](const char* what, const std::set<std::string>& a,
                     const std::set<std::string>& b) {
    for (const auto& x : b)
      if (!a.count(x)) out += fmt::format("  {} left behind: {}\n", what, x);
    for (const auto& x : a)
      if (!b.count(x)) out += fmt::format("  {} gone: {}\n", what, x);
  };
  compare("network namespace", netns, after.netns);
  compare("loop device", loop_devices, after.loop_devices);
  compare("mount", mounts, after.mounts);
  compare("process", processes, after.processes);
  return out;
}

void Lab::expect_writes_continue(const std::string& guest, int disk) {
  long long seen = last_ack(console(guest), disk);
  EXPECT_TRUE(wait_until(std::chrono::seconds(60),
                         [&] { return last_ack(console(guest), disk) > seen + 5; }))
      << guest << " stopped acknowledging writes on disk " << disk << " after " << seen;
}

void Lab::expect_verified(const std::string& guest, int disks) {
  RunResult v = try_run({"verify", guest});
  EXPECT_TRUE(v.status.success()) << v.out << v.err;
  for (int d = 0; d < disks; ++d)
    EXPECT_THAT(v.out, ::testing::ContainsRegex(fmt::format(
                           "disk {} .*[1-9][0-9]* acknowledged writes, 0 lost writes", d)))
        << v.out;
}

long long last_ack(const std::string& console, int disk) {
  std::ifstream in(console);
  ledger::Console c = ledger::parse_console(in);
  auto it = c.acked.find(static_cast<std::uint32_t>(disk));
  return it == c.acked.end() ? 0 : static_cast<long long>(it->second);
}

}  // namespace vmshift::testing
