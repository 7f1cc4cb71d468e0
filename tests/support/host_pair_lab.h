// The fixture of lab suites that move guests between two hosts: the lab
// (host1, host2), a vmshift command line with its own job store per test,
// quiet writing test guests, and checks of where a guest and its files are.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "base/json.h"
#include "support/lab.h"
#include "support/vmshift_cli.h"

namespace vmshift::testing {

class HostPairLab : public ::testing::Test {
 protected:
  static void start_lab(const std::string& label);
  static void stop_lab();
  void SetUp() override { cli_ = std::make_unique<VmshiftCli>(*lab_); }

  // A test guest on host1. Under TCG, QEMU 7.2 loses memory writes of a
  // guest during a migration now and then (docs/live-migration.md), the more
  // its kernel writes: test guests dirty 1 MiB/s, write 5 records a second
  // and print a heartbeat a second.
  static void boot(const std::string& guest, const Argv& extra = {});
  // `vmshift migrate GUEST --to HOST ARGS... --json`: the finished event.
  Json migrate(const std::string& guest, const std::string& to, const Argv& extra = {},
               const std::vector<std::string>& env = {});
  // The guest runs on `host` and no other host has it.
  static void expect_only_on(const std::string& guest, const std::string& host);
  static bool exists(const std::string& host, const std::string& path);
  // qemu-img info of an image on a host.
  static Json image_info(const std::string& host, const std::string& path);
  static std::int64_t allocated(const std::string& host, const std::string& path) {
    return image_info(host, path).get_int("actual-size");
  }
  static void destroy(const std::string& host, const std::string& guest);
  // Waits until job id runs with bytes moving (and, if given, in that phase).
  void wait_running(std::int64_t id, const std::string& phase = "");

  static Lab* lab_;
  std::unique_ptr<VmshiftCli> cli_;
};

}  // namespace vmshift::testing
