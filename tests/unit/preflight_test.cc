// What preflight decides without a host: which host has a VM (one rule for
// every command), and how probes of a host's files become facts, failures
// included.
#include "core/preflight.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "base/error.h"

namespace vmshift::core {
namespace {

using ::testing::HasSubstr;

std::string chosen(const std::vector<VmSighting>& s) { return choose_vm_host("g1", s, "lab.toml"); }

Error refusal(const std::vector<VmSighting>& s) {
  try {
    chosen(s);
  } catch (const Error& e) {
    return e;
  }
  throw std::runtime_error("no error");
}

// Test that the host where the VM runs is chosen, even when another host
// defines it too (a VM moved and left defined behind), or another host
// does not answer.
TEST(ChooseVmHost, TheHostWhereItRuns) {
  EXPECT_EQ(chosen({{.host = "host1", .defined = true},
                    {.host = "host2", .defined = true, .active = true}}),
            "host2");
  EXPECT_EQ(chosen({{.host = "host1", .defined = true, .active = true},
                    {.host = "host2", .unreachable = true}}),
            "host1");
}

// Test that a VM defined on one host only is found there, running or not.
TEST(ChooseVmHost, TheOneHostThatDefinesIt) {
  EXPECT_EQ(chosen({{.host = "host1"}, {.host = "host2", .defined = true}}), "host2");
}

// Test that a VM defined on several hosts and running on none, or running
// on several, is refused with the hosts named and --host suggested.
TEST(ChooseVmHost, AmbiguousIsRefusedNamingTheHosts) {
  Error e = refusal(
      {{.host = "host1", .defined = true}, {.host = "host2", .defined = true}, {.host = "host3"}});
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "VM 'g1' is defined on host1 and host2: say which with --host");

  e = refusal({{.host = "host1", .defined = true, .active = true},
               {.host = "host2", .defined = true, .active = true}});
  EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(e.what(), HasSubstr("runs on several hosts (host1, host2): say which with --host"));
}

// Test that a VM no host has is not found, with the hosts that did not
// answer named.
TEST(ChooseVmHost, NotFoundNamesTheUnreachable) {
  Error e = refusal({{.host = "host1"}, {.host = "host2", .unreachable = true}});
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_STREQ(e.what(),
               "no VM named 'g1' on any host of the inventory lab.toml (unreachable: host2)");
  EXPECT_STREQ(refusal({{.host = "host1"}}).what(),
               "no VM named 'g1' on any host of the inventory lab.toml");
}

// Storage with some files and directories, and paths whose probes fail.
class ProbedStorage : public hosts::Storage {
 public:
  std::set<std::string> files, broken;
  std::map<std::string, std::optional<std::uint64_t>> dirs;
  std::set<std::pair<std::string, std::string>> same;
  int same_asked = 0, identity_asked = 0;

  bool exists(const std::string& path) override {
    if (broken.count(path) > 0) throw Error(ErrorCode::kIo, "cannot look up '" + path + "'");
    return files.count(path) > 0;
  }
  std::optional<std::uint64_t> free_bytes(const std::string& dir) override {
    auto it = dirs.find(dir);
    if (it == dirs.end()) throw Error(ErrorCode::kNotFound, "no directory '" + dir + "'");
    return it->second;
  }
  void remove(const std::string&) override { throw Error(ErrorCode::kInternal, "no removal"); }
  bool same_file(const std::string& a, const std::string& b) override {
    ++same_asked;
    if (broken.count(a) > 0) throw Error(ErrorCode::kIo, "cannot compare '" + a + "'");
    return same.count({a, b}) > 0;
  }
  std::optional<std::uint64_t> allocation(const std::string&) override { return 0; }
  void create_image(const hosts::NewImage&) override {
    throw Error(ErrorCode::kInternal, "no creation");
  }
  std::optional<hosts::FileIdentity> identity(const std::string& path) override {
    ++identity_asked;
    if (path == "/d/locked") throw Error(ErrorCode::kIo, "permission denied");
    return hosts::FileIdentity{.basis = "test", .key = path};
  }
};

// Test that each probe's answer is kept, a probe that throws keeps its
// error, a probe not asked for answers with an error, and same_file and
// identity are asked only of files that exist.
TEST(ProbeFiles, AnswersAndFailures) {
  ProbedStorage st;
  st.files = {"/d/a", "/d/b", "/d/locked"};
  st.broken = {"/d/broken"};
  st.dirs = {{"/d", 10}, {"/unknown", std::nullopt}};
  st.same = {{"/s/a", "/d/a"}};
  ProbeList pl;
  pl.files = {"/d/a", "/d/missing", "/d/broken"};
  pl.dirs = {"/d", "/unknown", "/gone"};
  pl.same = {{"/s/a", "/d/a"}, {"/s/b", "/d/b"}, {"/s/c", "/d/missing"}};
  pl.identities = {"/d/a", "/d/missing", "/d/locked"};
  FileFacts ff = probe_files(pl, st);

  EXPECT_TRUE(ff.file("/d/a").exists);
  EXPECT_TRUE(ff.file("/d/a").error.empty());
  EXPECT_FALSE(ff.file("/d/missing").exists);
  EXPECT_TRUE(ff.file("/d/missing").error.empty());
  EXPECT_EQ(ff.file("/d/broken").error, "cannot look up '/d/broken'");
  EXPECT_THAT(ff.file("/d/never").error, HasSubstr("'/d/never' was not looked at"));

  EXPECT_EQ(ff.dir("/d").free_bytes, 10u);
  EXPECT_TRUE(ff.dir("/unknown").error.empty());
  EXPECT_FALSE(ff.dir("/unknown").free_bytes);
  EXPECT_EQ(ff.dir("/gone").error, "no directory '/gone'");

  EXPECT_TRUE(ff.same_file("/s/a", "/d/a").same);
  EXPECT_FALSE(ff.same_file("/s/b", "/d/b").same);
  EXPECT_TRUE(ff.same_file("/s/b", "/d/b").error.empty());
  EXPECT_FALSE(ff.same_file("/s/c", "/d/missing").error.empty());  // not asked: b is not there
  EXPECT_EQ(st.same_asked, 2);

  EXPECT_EQ(ff.identity("/d/a").identity->key, "/d/a");
  EXPECT_EQ(ff.identity("/d/locked").error, "permission denied");
  EXPECT_FALSE(ff.identity("/d/missing").error.empty());  // not asked
  EXPECT_EQ(st.identity_asked, 2);
}

}  // namespace
}  // namespace vmshift::core
