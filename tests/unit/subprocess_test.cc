#include "base/subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "base/error.h"

namespace vmshift {
namespace {

Deadline soon() { return Deadline::after(std::chrono::seconds(10)); }

// Test that the files a child's output goes to (a job's log) are created
// private, 0600, whatever the umask: a job log names hosts, paths and errors.
TEST(Subprocess, OutputFilesArePrivate) {
  char dir[] = "/tmp/vmshift-spawn-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string log = std::string(dir) + "/job.log";
  mode_t old = ::umask(022);
  SpawnOptions so;
  so.stdout_file = log;
  so.stderr_file = log;
  Argv argv = {"/bin/echo", "hello"};
  std::optional<ExitStatus> st = spawn(argv, so).wait(soon());
  ::umask(old);
  ASSERT_TRUE(st && st->success());
  struct stat info;
  ASSERT_EQ(::stat(log.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  ::unlink(log.c_str());
  ::rmdir(dir);
}

// Test that output and exit status are captured.
TEST(Subprocess, CapturesOutputAndStatus) {
  Argv argv = {"sh", "-c", "echo out; echo err >&2; exit 3"};
  RunResult r = run(argv, soon());
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_EQ(r.status.code, 3);
  EXPECT_FALSE(r.status.success());
  EXPECT_EQ(r.status.describe(), "exited with status 3");
}

// Test that arguments are passed as they are, never interpreted by a shell.
TEST(Subprocess, ArgumentsAreNotShellInterpreted) {
  Argv argv = {"printf", "%s|", "a b", "$HOME", "; rm -rf /", "'q'"};
  RunResult r = run(argv, soon());
  EXPECT_EQ(r.out, "a b|$HOME|; rm -rf /|'q'|");
}

// Test that a missing program is reported as not found, with its name.
TEST(Subprocess, MissingProgramIsNotFound) {
  Argv argv = {"vmshift-no-such-program"};
  try {
    run(argv, soon());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("vmshift-no-such-program"), std::string::npos);
  }
}

// Test that a child still running at the deadline is killed and reported.
TEST(Subprocess, DeadlineKillsTheChild) {
  Argv argv = {"sleep", "30"};
  auto start = std::chrono::steady_clock::now();
  try {
    run(argv, Deadline::after(std::chrono::milliseconds(200)));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTimeout);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// Test that run_checked names the command, its status and its stderr.
TEST(Subprocess, RunCheckedExplainsFailure) {
  Argv argv = {"sh", "-c", "echo 'disk is full' >&2; exit 1"};
  try {
    run_checked(argv, soon());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCommandFailed);
    EXPECT_EQ(std::string(e.what()),
              "'sh -c 'echo '\\''disk is full'\\'' >&2; exit 1'' exited with status 1: disk is "
              "full");
  }
}

// Test that destroying a Process kills a child that still runs.
TEST(Subprocess, DestructorKillsRunningChild) {
  pid_t pid;
  {
    Argv argv = {"sleep", "30"};
    Process p = spawn(argv);
    pid = p.pid();
    EXPECT_TRUE(p.running());
  }
  EXPECT_NE(::kill(pid, 0), 0);  // reaped: the pid no longer exists for us
}

// Test that terminate() ends a child with SIGTERM within its grace period.
TEST(Subprocess, TerminateUsesSigterm) {
  Argv argv = {"sleep", "30"};
  Process p = spawn(argv);
  ExitStatus s = p.terminate(Deadline::after(std::chrono::seconds(5)));
  EXPECT_EQ(s.signal, SIGTERM);
}

// Test that wait() returns nothing while the child runs and its status after.
TEST(Subprocess, WaitHonoursDeadline) {
  Argv argv = {"sh", "-c", "read x; exit 7"};
  Process p = spawn(argv);  // stdin is /dev/null: read returns at once
  auto s = p.wait(soon());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->code, 7);
  Argv sleeper = {"sleep", "30"};
  Process q = spawn(sleeper);
  EXPECT_FALSE(q.wait(Deadline::after(std::chrono::milliseconds(50))));
}

// Test that describe_argv quotes only what needs quoting.
TEST(Subprocess, DescribeArgvQuotes) {
  Argv argv = {"qemu-img", "create", "-f", "qcow2", "/tmp/a b.qcow2", "1G", ""};
  EXPECT_EQ(describe_argv(argv), "qemu-img create -f qcow2 '/tmp/a b.qcow2' 1G ''");
}

// Test that extra_env replaces an inherited variable of the same name.
TEST(Subprocess, ExtraEnvOverridesInherited) {
  ::setenv("VMSHIFT_TEST_VAR", "inherited", 1);
  SpawnOptions o;
  o.extra_env = {"VMSHIFT_TEST_VAR=override"};
  Argv argv = {"printenv", "VMSHIFT_TEST_VAR"};
  EXPECT_EQ(run(argv, soon(), o).out, "override\n");
  ::unsetenv("VMSHIFT_TEST_VAR");
}

// Test that a child gets a stdin even when this process runs with fd 0 closed.
TEST(Subprocess, StdinWhenParentHasNone) {
  int saved = ::fcntl(0, F_DUPFD_CLOEXEC, 10);
  ASSERT_GE(saved, 0);
  ::close(0);
  Argv argv = {"sh", "-c", "if [ -e /proc/self/fd/0 ]; then echo open; else echo closed; fi"};
  RunResult r = run(argv, soon());
  ::dup2(saved, 0);
  ::close(saved);
  EXPECT_EQ(r.out, "open\n");
}

}  // namespace
}  // namespace vmshift
