// The process model around jobs: queued jobs whose waiting process died.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "core/job_store.h"
#include "core/runner.h"
#include "hosts/inventory.h"
#include "support/temp_dir.h"

namespace vmshift::core {
namespace {

using ::testing::HasSubstr;
using vmshift::testing::TempDir;

NewJob queued_job(const std::string& vm) {
  return NewJob{.vm = vm,
                .type = "qsm",
                .source_host = "h1",
                .dest_host = "h2",
                .slots = {{"h1", LimitClass::kStorage}, {"h2", LimitClass::kStorage}},
                .steps = {"copy", "save"}};
}

// Creates a queued job from a forked process that then exits: the job's
// waiter is dead. (This process has no store open while it forks.)
void create_from_dead_process(const std::string& path, const std::string& vm) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    try {
      JobStore store = JobStore::open(path);
      store.create(queued_job(vm));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      code = 1;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// Test that the recovery every job command runs cancels a queued job whose
// waiting process died (nobody would ever start it), says so, and leaves
// alone a queued job whose waiter lives.
TEST(ProcessModel, OrphanedQueuedJobIsCancelledByRecovery) {
  TempDir dir("vmshift-orphan");
  std::string path = dir.file("state/jobs.db");
  create_from_dead_process(path, "lost");
  JobStore store = JobStore::open(path);
  std::int64_t orphan = store.list(1).front().id;
  ASSERT_EQ(store.get(orphan).state, JobState::kQueued);
  std::int64_t waited = store.create(queued_job("waited"));  // this process waits for it

  std::vector<std::string> lines = recover_stale_jobs(store, hosts::Inventory::local_default());
  Job j = store.get(orphan);
  EXPECT_EQ(j.state, JobState::kCancelled);
  EXPECT_THAT(j.error, HasSubstr("died while it was queued; nothing was changed"));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr(fmt::format("job {} (qsm of lost) cancelled", orphan)));
  EXPECT_EQ(store.get(waited).state, JobState::kQueued);
}

}  // namespace
}  // namespace vmshift::core
