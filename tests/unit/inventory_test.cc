// The inventory file: parsing, defaults, errors with file:line:column, and
// where vmshift looks for it.
#include "hosts/inventory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "support/scoped_env.h"
#include "support/temp_dir.h"

namespace vmshift::hosts {
namespace {

using ::testing::HasSubstr;
using testing::ScopedEnv;

const char* kFull = R"(
[[host]]
name = "pve1"
uri = "qemu+ssh://root@pve1/system"
peer_uri = "qemu+tcp://pve1/system"
migration_address = "10.0.0.1"
max_storage_migrations = 3
max_live_migrations = 1

[[host]]
name = "pve2"
uri = "qemu+ssh://root@pve2/system"

[[storage]]
name = "pve1-local"
path = "/var/lib/libvirt/images/"
pool = "default"
hosts = ["pve1"]

[[storage]]
name = "nfs"
path = "/srv/vmstore"
hosts = ["pve1", "pve2"]
shared = true
)";

std::string error_of(const std::string& text) {
  try {
    Inventory::parse(text, "inv.toml");
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

// Test that every key of a full inventory is read, and defaults fill the rest.
TEST(Inventory, ParsesHostsAndStorage) {
  Inventory inv = Inventory::parse(kFull, "inv.toml");
  EXPECT_EQ(inv.source(), "inv.toml");
  ASSERT_EQ(inv.hosts().size(), 2u);
  const HostConfig& a = inv.host("pve1");
  EXPECT_EQ(a.uri, "qemu+ssh://root@pve1/system");
  EXPECT_EQ(a.peer_uri, "qemu+tcp://pve1/system");
  EXPECT_EQ(a.migration_address, "10.0.0.1");
  EXPECT_EQ(a.max_storage_migrations, 3);
  EXPECT_EQ(a.max_live_migrations, 1);
  const HostConfig& b = inv.host("pve2");
  EXPECT_FALSE(b.peer_uri);
  EXPECT_EQ(b.max_storage_migrations, 2);
  EXPECT_EQ(b.max_live_migrations, 2);

  ASSERT_EQ(inv.storage().size(), 2u);
  EXPECT_EQ(inv.storage()[0].path, "/var/lib/libvirt/images");  // trailing slash dropped
  EXPECT_EQ(inv.storage()[0].pool, "default");
  EXPECT_FALSE(inv.storage()[0].shared);
  EXPECT_TRUE(inv.storage()[1].shared);
  EXPECT_EQ(inv.storage_of("pve2").size(), 1u);
  EXPECT_EQ(inv.storage_of("pve1").size(), 2u);
  auto loc = inv.storage_for("pve1", "/srv/vmstore/vm1/disk.qcow2");
  ASSERT_TRUE(loc);
  EXPECT_EQ(loc->name, "nfs");
  EXPECT_FALSE(inv.storage_for("pve2", "/var/lib/libvirt/images/x.qcow2"));
  EXPECT_THAT([&] { inv.host("pve3"); }, ::testing::ThrowsMessage<Error>(HasSubstr("pve3")));
}

// Test that mistakes are errors naming the file, the place and the problem.
TEST(Inventory, RejectsMistakes) {
  EXPECT_THAT(error_of("[[host]]\nname = \"a\"\n"),
              HasSubstr("inv.toml:1:1: host 'a' needs a 'uri'"));
  EXPECT_THAT(
      error_of("[[host]]\nname = \"a\"\nuri = \"x\"\n[[host]]\nname = \"a\"\nuri = \"y\"\n"),
      HasSubstr("inv.toml:4:1: host 'a' is listed twice"));
  EXPECT_THAT(
      error_of("[[host]]\nname = \"a\"\nuri = \"x\"\nmax_storage_migrations = 0\n"),
      HasSubstr("'max_storage_migrations' of host 'a' must be a whole number from 1 to 64"));
  EXPECT_THAT(error_of("[[host]]\nname = \"a\"\nuri = 5\n"),
              HasSubstr("'uri' of host 'a' must be a non-empty string"));
  EXPECT_THAT(error_of("[[host]]\nname = \"a\"\nurl = \"x\"\n"),
              HasSubstr("host 'a' has an unknown key 'url'"));
  EXPECT_THAT(error_of("[[host]]\nname = \"a\"\nuri = \"x\"\n[[storage]]\nname = \"s\"\n"
                       "path = \"/s\"\nhosts = [\"b\"]\n"),
              HasSubstr("storage 's' names host 'b' that is not in the inventory"));
  EXPECT_THAT(error_of("[[host]]\nname = \"a\"\nuri = \"x\"\n[[host]]\nname = \"b\"\nuri = \"y\"\n"
                       "[[storage]]\nname = \"s\"\npath = \"/s\"\nhosts = [\"a\", \"b\"]\n"),
              HasSubstr("storage 's'"));
  EXPECT_THAT(error_of("this is not toml"), HasSubstr("inv.toml:1:"));
  EXPECT_THAT(error_of(""), HasSubstr("no [[host]]"));
}

void write(const std::string& path, const std::string& host) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << "[[host]]\nname = \"" << host << "\"\nuri = \"qemu:///system\"\n";
}

// Test the lookup order: --config, then $VMSHIFT_CONFIG, then the user's
// config dir ($XDG_CONFIG_HOME, else ~/.config); a named file that does not
// exist is an error, not a silent fallback.
TEST(Inventory, LookupOrder) {
  testing::TempDir dir("vmsinv");
  write(dir.file("explicit.toml"), "explicit");
  write(dir.file("env.toml"), "env");
  write(dir.file("xdg/vmshift/config.toml"), "xdg");
  write(dir.file("home/.config/vmshift/config.toml"), "home");

  ScopedEnv env("VMSHIFT_CONFIG", dir.file("env.toml"));
  ScopedEnv xdg("XDG_CONFIG_HOME", dir.file("xdg"));
  ScopedEnv home("HOME", dir.file("home"));
  EXPECT_EQ(Inventory::load(dir.file("explicit.toml")).hosts()[0].name, "explicit");
  EXPECT_EQ(Inventory::load().hosts()[0].name, "env");
  {
    ScopedEnv no_env("VMSHIFT_CONFIG", nullptr);
    EXPECT_EQ(Inventory::load().hosts()[0].name, "xdg");
    ScopedEnv no_xdg("XDG_CONFIG_HOME", nullptr);
    EXPECT_EQ(Inventory::load().hosts()[0].name, "home");
    std::filesystem::remove(dir.file("home/.config/vmshift/config.toml"));
    // Then /etc/vmshift/config.toml, else the built-in inventory.
    Inventory fallback = Inventory::load();
    if (!std::filesystem::exists("/etc/vmshift/config.toml")) {
      EXPECT_EQ(fallback.hosts()[0].name, "localhost");
      EXPECT_EQ(fallback.hosts()[0].uri, "qemu:///system");
      EXPECT_THAT(fallback.source(), HasSubstr("built-in"));
    } else {
      EXPECT_EQ(fallback.source(), "/etc/vmshift/config.toml");
    }
  }
  EXPECT_THAT([&] { Inventory::load(dir.file("missing.toml")); },
              ::testing::ThrowsMessage<Error>(HasSubstr("missing.toml")));
  ScopedEnv bad_env("VMSHIFT_CONFIG", dir.file("missing-env.toml"));
  EXPECT_THAT([&] { Inventory::load(); },
              ::testing::ThrowsMessage<Error>(HasSubstr("missing-env.toml")));
}

}  // namespace
}  // namespace vmshift::hosts
