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
using testing::TempDir;

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

// Test that the lookup order is --config, then $VMSHIFT_CONFIG, then the user's
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

// ---- More parsing cases: defaults, each error, each value type.

const char* kHostA = "[[host]]\nname = \"a\"\nuri = \"qemu:///system\"\n";

// The code of the error parsing `text` throws; fails the test if none.
ErrorCode code_of(const std::string& text) {
  try {
    Inventory::parse(text, "inv.toml");
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "accepted:\n" << text;
  return ErrorCode::kInternal;
}

// Test that keys left out get their documented defaults: limits of 2, no
// peer URI, migration address or pool, storage not shared.
TEST(Inventory, DefaultsForOptionalKeys) {
  Inventory inv = Inventory::parse(
      std::string(kHostA) + "[[storage]]\nname = \"s\"\npath = \"/s\"\nhosts = [\"a\"]\n",
      "inv.toml");
  const HostConfig& h = inv.host("a");
  EXPECT_EQ(h.uri, "qemu:///system");
  EXPECT_EQ(h.max_storage_migrations, 2);
  EXPECT_EQ(h.max_live_migrations, 2);
  EXPECT_FALSE(h.peer_uri);
  EXPECT_FALSE(h.migration_address);
  ASSERT_EQ(inv.storage().size(), 1u);
  EXPECT_FALSE(inv.storage()[0].pool);
  EXPECT_FALSE(inv.storage()[0].shared);
  EXPECT_EQ(inv.storage()[0].hosts, (std::vector<std::string>{"a"}));
}

// Test that the limits accept the ends of their range, 1 and 64.
TEST(Inventory, LimitsAcceptTheirRange) {
  Inventory inv = Inventory::parse(
      std::string(kHostA) + "max_storage_migrations = 1\nmax_live_migrations = 64\n", "inv.toml");
  EXPECT_EQ(inv.host("a").max_storage_migrations, 1);
  EXPECT_EQ(inv.host("a").max_live_migrations, 64);
}

// Test that a file that is not TOML is refused as bad data, with the file,
// line and column of the mistake and the parser's explanation.
TEST(Inventory, MalformedTomlNamesTheSpot) {
  std::string msg = error_of("[[host]\nname = \"a\"\n");
  EXPECT_THAT(msg, HasSubstr("inv.toml:1:8: "));
  EXPECT_THAT(msg, HasSubstr("table header"));
  EXPECT_THAT(error_of(std::string(kHostA) + "name = \n"), HasSubstr("inv.toml:4:"));
  EXPECT_THAT(error_of(std::string(kHostA) + "uri = \"again\"\n"), HasSubstr("inv.toml:4:"));
  EXPECT_EQ(code_of("[[host]\n"), ErrorCode::kBadData);
}

// Test that a host must have a non-empty name and uri, and the message says
// which key is missing.
TEST(Inventory, HostNeedsNameAndUri) {
  EXPECT_THAT(error_of("[[host]]\nuri = \"qemu:///system\"\n"),
              HasSubstr("inv.toml:1:1: a [[host]] needs a 'name'"));
  EXPECT_THAT(error_of("[[host]]\nname = \"\"\nuri = \"x\"\n"),
              HasSubstr("'name' of a [[host]] must be a non-empty string"));
  EXPECT_THAT(error_of("[[host]]\nname = \"a\"\nuri = \"\"\n"),
              HasSubstr("inv.toml:3:7: 'uri' of host 'a' must be a non-empty string"));
  EXPECT_EQ(code_of("[[host]]\nuri = \"x\"\n"), ErrorCode::kBadData);
  // A duplicate is found even when the other keys differ.
  EXPECT_THAT(error_of(std::string(kHostA) + "[[host]]\nname = \"b\"\nuri = \"x\"\n" + kHostA),
              HasSubstr("inv.toml:7:1: host 'a' is listed twice"));
}

// Test that a value of the wrong type is refused, naming the key, its
// host or storage, and what it should be.
TEST(Inventory, RejectsWrongValueTypes) {
  const std::string storage = "[[storage]]\nname = \"s\"\n";
  struct Case {
    std::string text, message;
  } cases[] = {
      {"[[host]]\nname = 5\nuri = \"x\"\n", "'name' of a [[host]] must be a non-empty string"},
      {"[[host]]\nname = \"a\"\nuri = 5\n", "'uri' of host 'a' must be a non-empty string"},
      {std::string(kHostA) + "peer_uri = 1\n", "'peer_uri' of host 'a' must be a string"},
      {std::string(kHostA) + "migration_address = [\"10.0.0.1\"]\n",
       "'migration_address' of host 'a' must be a string"},
      {std::string(kHostA) + "max_live_migrations = \"3\"\n",
       "'max_live_migrations' of host 'a' must be a whole number from 1 to 64"},
      {std::string(kHostA) + "max_live_migrations = 2.5\n",
       "'max_live_migrations' of host 'a' must be a whole number from 1 to 64"},
      {std::string(kHostA) + "max_storage_migrations = 65\n",
       "'max_storage_migrations' of host 'a' must be a whole number from 1 to 64"},
      {std::string(kHostA) + "max_storage_migrations = -1\n",
       "'max_storage_migrations' of host 'a' must be a whole number from 1 to 64"},
      {kHostA + storage + "path = 3\nhosts = [\"a\"]\n",
       "'path' of storage 's' must be a non-empty string"},
      {kHostA + storage + "path = \"/s\"\npool = 3\nhosts = [\"a\"]\n",
       "'pool' of storage 's' must be a string"},
      {kHostA + storage + "path = \"/s\"\nhosts = [\"a\"]\nshared = \"yes\"\n",
       "'shared' of storage 's' must be true or false"},
      {kHostA + storage + "path = \"/s\"\nhosts = \"a\"\n",
       "storage 's' needs 'hosts', a list of host names"},
      {kHostA + storage + "path = \"/s\"\nhosts = [1]\n",
       "'hosts' of storage 's' must list host names"},
      {"host = \"a\"\n", "hosts are written as [[host]] tables"},
      {"[host]\nname = \"a\"\nuri = \"x\"\n", "hosts are written as [[host]] tables"},
      {"host = [\"a\"]\n", "each [[host]] must be a table"},
      {std::string("storage = [\"s\"]\n") + kHostA,
       "storage locations are written as [[storage]] tables"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_THAT(error_of(c.text), HasSubstr(c.message));
    EXPECT_EQ(code_of(c.text), ErrorCode::kBadData);
  }
}

// Test that values TOML could convert to the wanted type are still refused:
// a boolean is not a number of migrations, a float not a whole number, and
// 1 or 0 is not true or false.
TEST(Inventory, RejectsValuesOfAConvertibleWrongType) {
  EXPECT_THAT(error_of(std::string(kHostA) + "max_storage_migrations = true\n"),
              HasSubstr("'max_storage_migrations' of host 'a' must be a whole number"));
  EXPECT_THAT(error_of(std::string(kHostA) + "max_live_migrations = 3.0\n"),
              HasSubstr("'max_live_migrations' of host 'a' must be a whole number"));
  EXPECT_THAT(error_of(std::string(kHostA) +
                       "[[storage]]\nname = \"s\"\npath = \"/s\"\nhosts = [\"a\"]\nshared = 1\n"),
              HasSubstr("'shared' of storage 's' must be true or false"));
}

// Test that each mistake in a [[storage]] is refused: no name, a relative path, no hosts,
// an unknown host, a local storage on two hosts, a duplicate, an unknown key.
TEST(Inventory, RejectsStorageMistakes) {
  std::string two = std::string(kHostA) + "[[host]]\nname = \"b\"\nuri = \"y\"\n";
  EXPECT_THAT(error_of(std::string(kHostA) + "[[storage]]\npath = \"/s\"\nhosts = [\"a\"]\n"),
              HasSubstr("inv.toml:4:1: a [[storage]] needs a 'name'"));
  EXPECT_THAT(
      error_of(std::string(kHostA) + "[[storage]]\nname = \"s\"\npath = \"s\"\nhosts = [\"a\"]\n"),
      HasSubstr("inv.toml:6:8: 'path' of storage 's' must be absolute"));
  EXPECT_THAT(error_of(std::string(kHostA) + "[[storage]]\nname = \"s\"\npath = \"/s\"\n"),
              HasSubstr("storage 's' needs 'hosts', a list of host names"));
  EXPECT_THAT(
      error_of(std::string(kHostA) + "[[storage]]\nname = \"s\"\npath = \"/s\"\nhosts = []\n"),
      HasSubstr("storage 's' needs 'hosts', a list of host names"));
  EXPECT_THAT(error_of(std::string(kHostA) +
                       "[[storage]]\nname = \"s\"\npath = \"/s\"\nhosts = [\"a\", \"nope\"]\n"
                       "shared = true\n"),
              HasSubstr("inv.toml:7:15: storage 's' names host 'nope' that is not in the "
                        "inventory"));
  EXPECT_THAT(error_of(two + "[[storage]]\nname = \"s\"\npath = \"/s\"\nhosts = [\"a\", \"b\"]\n"),
              HasSubstr("storage 's' is local (shared = false) but lists 2 hosts"));
  EXPECT_THAT(error_of(two + "[[storage]]\nname = \"s\"\npath = \"/s\"\nhosts = [\"a\"]\n"
                             "[[storage]]\nname = \"s\"\npath = \"/t\"\nhosts = [\"b\"]\n"),
              HasSubstr("inv.toml:11:1: storage 's' is listed twice"));
  EXPECT_THAT(error_of(std::string(kHostA) +
                       "[[storage]]\nname = \"s\"\npath = \"/s\"\nhosts = [\"a\"]\nsize = 1\n"),
              HasSubstr("storage 's' has an unknown key 'size'"));
  EXPECT_THAT(error_of(std::string("hosts = 1\n") + kHostA),
              HasSubstr("the inventory has an unknown key 'hosts'"));
  // Storage needs hosts to name, so storage alone is still "no [[host]]".
  EXPECT_THAT(error_of("[[storage]]\nname = \"s\"\npath = \"/s\"\nhosts = [\"a\"]\n"),
              HasSubstr("inv.toml: no [[host]]"));
}

// Test that storage written as a single table (or anything but [[storage]]
// tables) is refused like the same mistake for hosts, not dropped.
TEST(Inventory, RejectsStorageThatIsNotAnArrayOfTables) {
  EXPECT_THAT(
      error_of(std::string(kHostA) + "[storage]\nname = \"s\"\npath = \"/s\"\nhosts = [\"a\"]\n"),
      HasSubstr("[[storage]]"));
  EXPECT_THAT(error_of(std::string("storage = \"s\"\n") + kHostA), HasSubstr("[[storage]]"));
}

// Test that storage paths are kept as directories without trailing slashes,
// the root stays "/", and storage_for picks the deepest location containing
// a path, only at a directory boundary.
TEST(Inventory, StorageForPicksTheDeepestDirectory) {
  Inventory inv = Inventory::parse(std::string(kHostA) +
                                       "[[storage]]\nname = \"srv\"\npath = \"/srv//\"\n"
                                       "hosts = [\"a\"]\n"
                                       "[[storage]]\nname = \"fast\"\npath = \"/srv/fast\"\n"
                                       "hosts = [\"a\"]\n"
                                       "[[storage]]\nname = \"root\"\npath = \"/\"\n"
                                       "hosts = [\"a\"]\n",
                                   "inv.toml");
  EXPECT_EQ(inv.storage()[0].path, "/srv");
  EXPECT_EQ(inv.storage()[2].path, "/");
  EXPECT_EQ(inv.storage_for("a", "/srv/fast/vm.qcow2")->name, "fast");
  EXPECT_EQ(inv.storage_for("a", "/srv/fast")->name, "fast");
  EXPECT_EQ(inv.storage_for("a", "/srv/faster/vm.qcow2")->name, "srv");
  EXPECT_EQ(inv.storage_for("a", "/srvx/vm.qcow2")->name, "root");
  EXPECT_FALSE(inv.storage_for("b", "/srv/fast/vm.qcow2"));
  EXPECT_TRUE(inv.storage_of("b").empty());
}

// Test that an unknown host's error lists the hosts there are.
TEST(Inventory, UnknownHostListsKnownOnes) {
  Inventory inv = Inventory::parse(kFull, "inv.toml");
  try {
    inv.host("pve9");
    FAIL() << "pve9 was found";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_THAT(e.what(),
                HasSubstr("no host 'pve9' in the inventory inv.toml (hosts: pve1, pve2)"));
  }
}

// Test that the built-in inventory is this machine's libvirt only.
TEST(Inventory, LocalDefault) {
  Inventory inv = Inventory::local_default();
  ASSERT_EQ(inv.hosts().size(), 1u);
  EXPECT_EQ(inv.hosts()[0].name, "localhost");
  EXPECT_EQ(inv.hosts()[0].uri, "qemu:///system");
  EXPECT_EQ(inv.hosts()[0].max_storage_migrations, 2);
  EXPECT_TRUE(inv.storage().empty());
  EXPECT_THAT(inv.source(), HasSubstr("built-in"));
}

// Test that a loaded file is its own source (in messages), and that an
// explicit path wins even when $VMSHIFT_CONFIG names a missing file.
TEST(Inventory, ExplicitPathWinsOverABrokenEnvironment) {
  TempDir dir("vmsinv");
  write(dir.file("explicit.toml"), "explicit");
  ScopedEnv env("VMSHIFT_CONFIG", dir.file("missing.toml"));
  Inventory inv = Inventory::load(dir.file("explicit.toml"));
  EXPECT_EQ(inv.hosts()[0].name, "explicit");
  EXPECT_EQ(inv.source(), dir.file("explicit.toml"));
  try {
    Inventory::load();
    FAIL() << "a missing $VMSHIFT_CONFIG file was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_THAT(e.what(), HasSubstr("$VMSHIFT_CONFIG names '" + dir.file("missing.toml") +
                                    "', which does not exist"));
  }
}

// Test that an empty $VMSHIFT_CONFIG counts as unset, and that $XDG_CONFIG_HOME
// is used instead of ~/.config, not before it: with XDG set, ~/.config is
// not read.
TEST(Inventory, EmptyEnvIsUnsetAndXdgReplacesHome) {
  TempDir dir("vmsinv");
  write(dir.file("home/.config/vmshift/config.toml"), "home");
  std::filesystem::create_directories(dir.file("xdg"));
  ScopedEnv env("VMSHIFT_CONFIG", "");
  ScopedEnv home("HOME", dir.file("home"));
  {
    ScopedEnv xdg("XDG_CONFIG_HOME", "");  // empty: as if unset
    EXPECT_EQ(Inventory::load().hosts()[0].name, "home");
  }
  ScopedEnv xdg("XDG_CONFIG_HOME", dir.file("xdg"));
  Inventory inv = Inventory::load();
  // Next come /etc/vmshift/config.toml, then the built-in inventory; which
  // one depends on this machine, so only the file's existence decides what
  // to expect. Either way it is not the ~/.config file.
  EXPECT_NE(inv.source(), dir.file("home/.config/vmshift/config.toml"));
  if (std::filesystem::exists("/etc/vmshift/config.toml"))
    EXPECT_EQ(inv.source(), "/etc/vmshift/config.toml");
  else
    EXPECT_EQ(inv.source(), Inventory::local_default().source());
}

// Test that with neither $XDG_CONFIG_HOME nor $HOME set, load still ends at
// /etc/vmshift/config.toml or the built-in inventory.
TEST(Inventory, NoHomeFallsBackToSystemOrBuiltIn) {
  ScopedEnv env("VMSHIFT_CONFIG", nullptr);
  ScopedEnv xdg("XDG_CONFIG_HOME", nullptr);
  ScopedEnv home("HOME", nullptr);
  Inventory inv = Inventory::load();
  // Whether /etc/vmshift/config.toml exists is this machine's business (the
  // test never writes there): the expectation follows from that check.
  if (std::filesystem::exists("/etc/vmshift/config.toml")) {
    EXPECT_EQ(inv.source(), "/etc/vmshift/config.toml");
  } else {
    ASSERT_EQ(inv.hosts().size(), 1u);
    EXPECT_EQ(inv.hosts()[0].name, "localhost");
    EXPECT_EQ(inv.hosts()[0].uri, "qemu:///system");
  }
}

// Test that a config file that is found but broken is an error naming that
// file, not a silent fall back to the next place.
TEST(Inventory, BrokenFileFoundIsAnError) {
  TempDir dir("vmsinv");
  std::filesystem::create_directories(dir.file("xdg/vmshift"));
  std::ofstream(dir.file("xdg/vmshift/config.toml")) << "[[host]]\nname = \"a\"\n";
  ScopedEnv env("VMSHIFT_CONFIG", nullptr);
  ScopedEnv xdg("XDG_CONFIG_HOME", dir.file("xdg"));
  EXPECT_THAT([] { Inventory::load(); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr(dir.file("xdg/vmshift/config.toml") + ":1:1: host 'a' needs a 'uri'")));
  ScopedEnv named("VMSHIFT_CONFIG", dir.file("xdg/vmshift/config.toml"));
  EXPECT_THAT([] { Inventory::load(); },
              ::testing::ThrowsMessage<Error>(HasSubstr("needs a 'uri'")));
}

}  // namespace
}  // namespace vmshift::hosts
