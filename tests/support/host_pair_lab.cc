#include "support/host_pair_lab.h"

#include <fmt/format.h>

#include "support/wait.h"

namespace vmshift::testing {

using namespace std::chrono_literals;

Lab* HostPairLab::lab_ = nullptr;

void HostPairLab::start_lab(const std::string& label) {
  lab_ = new Lab(label);
  lab_->up(2);
}

void HostPairLab::stop_lab() {
  delete lab_;
  lab_ = nullptr;
}

void HostPairLab::boot(const std::string& guest, const Argv& extra) {
  Argv a = {"guest",        guest, "--host",         "host1", "--dirty-rate", "1",
            "--write-rate", "5",   "--heartbeat-ms", "1000",  "--mem-mib",    "32"};
  a.insert(a.end(), extra.begin(), extra.end());
  lab_->run(a);
}

Json HostPairLab::migrate(const std::string& guest, const std::string& to, const Argv& extra,
                          const std::vector<std::string>& env) {
  Argv a = {"migrate", guest, "--to", to, "--json"};
  a.insert(a.end(), extra.begin(), extra.end());
  RunResult r = cli_->run(a, env);
  std::vector<Json> ev = json_lines(r.out);
  if (ev.empty() || ev.back().get_string("event") != "finished")
    throw std::runtime_error(
        fmt::format("vmshift {} gave no result: {}{}", fmt::join(a, " "), r.out, r.err));
  return ev.back();
}

void HostPairLab::expect_only_on(const std::string& guest, const std::string& host) {
  EXPECT_EQ(domstate(*lab_, host, guest), "running");
  std::string other = host == "host1" ? "host2" : "host1";
  EXPECT_FALSE(defined(*lab_, other, guest)) << guest << " is still defined on " << other;
}

bool HostPairLab::exists(const std::string& host, const std::string& path) {
  return lab_->in_host(host, {"test", "-e", path}).status.success();
}

Json HostPairLab::image_info(const std::string& host, const std::string& path) {
  RunResult r = lab_->in_host(host, {"qemu-img", "info", "--force-share", "--output=json", path});
  if (!r.status.success()) throw std::runtime_error("qemu-img info failed: " + r.err);
  return Json::parse(r.out);
}

void HostPairLab::destroy(const std::string& host, const std::string& guest) {
  lab_->virsh(host, {"destroy", guest});
  lab_->virsh(host, {"undefine", guest});
}

void HostPairLab::wait_running(std::int64_t id, const std::string& phase) {
  ASSERT_TRUE(wait_until(90s,
                         [&] {
                           Json j = cli_->job(id);
                           if (j.get_string("state") != "running" || j.get_int("bytes_done") <= 0)
                             return false;
                           if (phase.empty()) return true;
                           for (const auto& e : json_lines(cli_->job_log(id)))
                             if (e.get_string("event") == "stats" && e.get_string("phase") == phase)
                               return true;
                           return false;
                         }))
      << cli_->job(id).dump() << cli_->job_log(id);
}

}  // namespace vmshift::testing
