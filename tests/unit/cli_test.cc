// Tests of the CLI: every command group registers its commands and options,
// the chosen subcommand's action runs, and --bandwidth means the same MiB/s
// (fractions allowed) for every command, in bytes/s below the CLI.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "base/bandwidth.h"
#include "base/error.h"
#include "cli/command.h"
#include "cli/copy_commands.h"
#include "cli/migrate_commands.h"
#include "cli/storage_commands.h"
#include "hosts/inventory.h"
#include "migrate/kind.h"

namespace vmshift::cli {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

constexpr char kInventory[] = R"(
[[host]]
name = "host1"
uri = "qemu:///one"
[[host]]
name = "host2"
uri = "qemu:///two"
)";

hosts::Inventory inventory() { return hosts::Inventory::parse(kInventory, "test.toml"); }

// Test that MiB/s become bytes/s to the nearest byte, fractions included,
// and that a rate that cannot be one is refused naming the option.
TEST(Bandwidth, MiBPerSecondToBytes) {
  EXPECT_EQ(bytes_per_s_from_mib(0, "--bandwidth"), 0u);
  EXPECT_EQ(bytes_per_s_from_mib(0.5, "--bandwidth"), 512u * 1024);
  EXPECT_EQ(bytes_per_s_from_mib(1, "--bandwidth"), 1024u * 1024);
  EXPECT_EQ(bytes_per_s_from_mib(1.5, "--bandwidth"), 1536u * 1024);
  EXPECT_EQ(bytes_per_s_from_mib(0.3, "--bandwidth"), 314573u);  // 314572.8
  EXPECT_EQ(bytes_per_s_from_mib(100000, "--bandwidth"), 100000ull * 1024 * 1024);
  EXPECT_THAT([] { bytes_per_s_from_mib(-1, "--bandwidth"); },
              ThrowsMessage<Error>(HasSubstr("--bandwidth cannot be negative")));
  EXPECT_THAT([] { bytes_per_s_from_mib(std::nan(""), "--bandwidth"); },
              ThrowsMessage<Error>(HasSubstr("cannot be negative")));
  EXPECT_THAT([] { bytes_per_s_from_mib(std::numeric_limits<double>::infinity(), "--bandwidth"); },
              ThrowsMessage<Error>(HasSubstr("--bandwidth")));
  EXPECT_THAT([] { bytes_per_s_from_mib(1e12, "--bandwidth"); },
              ThrowsMessage<Error>(HasSubstr("too large")));
  EXPECT_THAT([] { bytes_per_s_from_mib(1e-9, "--bandwidth"); },
              ThrowsMessage<Error>(HasSubstr("less than 1 byte/s (0 means unlimited)")));
}

// Test that only whole MiB/s convert back for APIs that take nothing finer.
TEST(Bandwidth, WholeMiBPerSecond) {
  EXPECT_EQ(whole_mib_per_s(0), 0u);
  EXPECT_EQ(whole_mib_per_s(3 * kBytesPerMiB), 3u);
  EXPECT_EQ(whole_mib_per_s(kBytesPerMiB / 2), std::nullopt);
  EXPECT_EQ(whole_mib_per_s(kBytesPerMiB + 1), std::nullopt);
}

// Test that --bandwidth 0.5 is 0.5 MiB/s (512 KiB/s) for migrate, plan,
// move-storage and copy alike.
TEST(Bandwidth, SameMeaningForEveryCommand) {
  hosts::Inventory inv = inventory();
  {
    CLI::App app;
    MigrateArgs a;
    add_migrate_options(&app, a);
    app.parse("vm1 --to host2 --host host1 --bandwidth 0.5", false);
    EXPECT_EQ(a.bandwidth_mib, 0.5);
    EXPECT_EQ(plan_request(a, inv).options.bandwidth, 512u * 1024);
    a.bandwidth_mib = 0;
    EXPECT_EQ(plan_request(a, inv).options.bandwidth, 0u);
    a.bandwidth_mib = -2;
    EXPECT_THAT([&] { plan_request(a, inv); },
                ThrowsMessage<Error>(HasSubstr("--bandwidth cannot be negative")));
  }
  {
    CLI::App app;
    MoveStorageArgs a;
    add_move_storage_options(&app, a);
    app.parse("vm1 --to /srv/fast --bandwidth 0.5", false);
    EXPECT_EQ(move_storage_options(a).bandwidth, 512u * 1024);
    a.bandwidth_mib = -2;
    EXPECT_THAT([&] { move_storage_options(a); },
                ThrowsMessage<Error>(HasSubstr("--bandwidth cannot be negative")));
  }
  {
    CLI::App app;
    CopyArgs a;
    add_copy_options(&app, a);
    app.parse("host1:/a.qcow2 host2:/b.qcow2 --bandwidth 0.5", false);
    migrate::CopyJobOptions o = copy_options(a, inv);
    EXPECT_EQ(o.bandwidth, 512u * 1024);
    EXPECT_EQ(o.from_host, "host1");
    EXPECT_EQ(o.to_path, "/b.qcow2");
    EXPECT_EQ(o.chunk_size, 64u << 20);
    a.bandwidth_mib = -2;
    EXPECT_THAT([&] { copy_options(a, inv); },
                ThrowsMessage<Error>(HasSubstr("--bandwidth cannot be negative")));
  }
}

// Test that --type takes every transfer type by its name, and that an
// unknown one is refused naming it and the known types (a job type that
// `migrate` does not run, such as copy, is refused by the plan:
// PlannerTest.TypeChoiceAndForcedTypes).
TEST(MigrateType, UnknownTypeIsRefused) {
  hosts::Inventory inv = inventory();
  CLI::App app;
  MigrateArgs a;
  add_migrate_options(&app, a);
  app.parse("vm1 --to host2 --host host1", false);
  EXPECT_EQ(plan_request(a, inv).options.type, std::nullopt);
  for (migrate::Kind k : {migrate::Kind::kLive, migrate::Kind::kLiveVsm, migrate::Kind::kQsm,
                          migrate::Kind::kQuick, migrate::Kind::kNetwork, migrate::Kind::kCopy}) {
    a.type = std::string(migrate::kind_name(k));
    EXPECT_EQ(plan_request(a, inv).options.type, k) << *a.type;
  }
  a.type = "teleport";
  EXPECT_THAT([&] { plan_request(a, inv); },
              ThrowsMessage<Error>(AllOf(HasSubstr("unknown job type 'teleport'"),
                                         HasSubstr("live, live-vsm, qsm, quick, network"))));
}

// Test that the registration has every command with its options and
// defaults, as scripts and the lab tests use them.
TEST(Commands, EveryGroupRegistersItsCommands) {
  CLI::App app;
  Registry registry;
  register_commands(app, registry);
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> expected = {
      {{"version"}, {}},
      {{"qmp"}, {"--socket", "--timeout", "COMMAND", "ARGUMENTS"}},
      {{"hosts"}, {"--json"}},
      {{"hosts", "baseline"}, {"--json"}},
      {{"vms"}, {"--host", "--json"}},
      {{"jobs"}, {"--json", "--limit"}},
      {{"jobs", "show"}, {"ID", "--json"}},
      {{"jobs", "cancel"}, {"ID"}},
      {{"jobs", "wait"}, {"ID", "--timeout", "--json"}},
      {{"jobs", "resume"}, {"ID", "--detach", "--json"}},
      {{"jobs", "run"}, {"ID", "--json", "--queue-timeout"}},
      {{"move-storage"},
       {"VM", "--host", "--qmp", "--to", "--disk", "--bandwidth", "--sync-writes", "--keep-source",
        "--force", "--shallow", "--progress-timeout", "--queue-timeout", "--detach", "--json"}},
      {{"plan"},
       {"VM",
        "--to",
        "--host",
        "--type",
        "--storage",
        "--disk",
        "--bandwidth",
        "--compress",
        "--parallel",
        "--auto-converge",
        "--postcopy",
        "--max-downtime",
        "--timeout-per-gib",
        "--progress-timeout",
        "--timeout-action",
        "--tls",
        "--keep-source",
        "--force",
        "--shallow",
        "--verify",
        "--start",
        "--no-measure",
        "--json"}},
      {{"migrate"}, {"VM", "--to", "--bandwidth", "--detach", "--queue-timeout", "--json"}},
      {{"rate"}, {"VM", "--host", "--json"}},
      {{"copy"},
       {"FROM", "TO", "--bandwidth", "--chunk-mib", "--verify", "--force", "--detach", "--json"}},
      {{"compare"}, {"A", "B", "--chunk-mib", "--json"}},
  };
  for (const auto& [path, options] : expected) {
    CLI::App* cmd = &app;
    for (const auto& name : path) cmd = cmd->get_subcommand(name);
    for (const auto& o : options) EXPECT_NO_THROW(cmd->get_option(o)) << path.back() << " " << o;
  }
  EXPECT_EQ(app.get_subcommand("move-storage")->get_option("--progress-timeout")->get_default_str(),
            "150");
  EXPECT_EQ(app.get_subcommand("migrate")->get_option("--progress-timeout")->get_default_str(),
            "120");
  EXPECT_EQ(app.get_subcommand("migrate")->get_option("--timeout-action")->get_default_str(),
            "abort");
  EXPECT_EQ(app.get_subcommand("copy")->get_option("--chunk-mib")->get_default_str(), "64");
  EXPECT_EQ(app.get_subcommand("jobs")->get_option("--limit")->get_default_str(), "50");
  EXPECT_EQ(app.get_subcommand("qmp")->get_option("--timeout")->get_default_str(), "30");
  EXPECT_THROW(app.get_subcommand("plan")->get_option("--detach"), CLI::OptionNotFound);
}

// Test that the innermost subcommand chosen runs, and only it.
TEST(Commands, DispatchRunsTheInnermostChosen) {
  CLI::App app;
  Registry registry;
  std::vector<std::string> ran;
  auto* outer = app.add_subcommand("outer");
  auto* inner = outer->add_subcommand("inner");
  auto* other = app.add_subcommand("other");
  registry.on(outer, [&](Session&) {
    ran.push_back("outer");
    return 3;
  });
  registry.on(inner, [&](Session&) {
    ran.push_back("inner");
    return 4;
  });
  registry.on(other, [&](Session&) {
    ran.push_back("other");
    return 5;
  });
  Session session(std::nullopt);
  app.parse("outer inner", false);
  EXPECT_EQ(registry.dispatch(app, session), 4);
  app.parse("outer", false);
  EXPECT_EQ(registry.dispatch(app, session), 3);
  app.parse("other", false);
  EXPECT_EQ(registry.dispatch(app, session), 5);
  EXPECT_EQ(ran, (std::vector<std::string>{"inner", "outer", "other"}));
}

}  // namespace
}  // namespace vmshift::cli
