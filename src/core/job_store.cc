#include "core/job_store.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <pwd.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>
#include <type_traits>

#include "base/deadline.h"
#include "base/error.h"
#include "base/poll_until.h"
#include "base/unique_fd.h"

// One JobStore is one SQLite connection: use it from one thread at a time,
// and never across fork() (a child opens its own).
//
// Besides the lease of a running job, a queued job records its "waiter": the
// process that created it or last called try_start for it. A queued job
// whose waiter is gone does not hold back younger jobs (FIFO), so that a
// killed `vmshift` waiting in the queue cannot block a host forever.

namespace vmshift::core {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

// Schema migrations: kMigrations[v] takes the schema from version v to v + 1.
constexpr const char* kMigrations[] = {
    // Version 1.
    R"sql(
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  vm TEXT NOT NULL,
  type TEXT NOT NULL,
  source_host TEXT NOT NULL,
  dest_host TEXT NOT NULL,
  state TEXT NOT NULL,
  bytes_total INTEGER NOT NULL DEFAULT 0,
  bytes_done INTEGER NOT NULL DEFAULT 0,
  rate REAL NOT NULL DEFAULT 0,
  eta_seconds REAL,
  pause_ms INTEGER,
  created_ms INTEGER NOT NULL,
  started_ms INTEGER,
  ended_ms INTEGER,
  error TEXT NOT NULL DEFAULT '',
  result TEXT NOT NULL DEFAULT '',
  params TEXT NOT NULL DEFAULT '{}',
  state_data TEXT NOT NULL DEFAULT '{}',
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  lease_pid INTEGER,
  lease_start INTEGER,
  lease_expires_ms INTEGER,
  waiter_pid INTEGER,
  waiter_start INTEGER
);
CREATE INDEX jobs_by_state ON jobs (state);
CREATE TABLE job_steps (
  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  started_ms INTEGER,
  ended_ms INTEGER,
  detail TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job_id, idx)
);
CREATE TABLE job_slots (
  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  host TEXT NOT NULL,
  kind TEXT NOT NULL,
  PRIMARY KEY (job_id, idx),
  UNIQUE (job_id, host, kind)
);
CREATE INDEX job_slots_by_slot ON job_slots (host, kind);
)sql",
    // Version 2: who the VM is, for one active job per VM.
    R"sql(
ALTER TABLE jobs ADD COLUMN vm_uuid TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_vm_uuid ON jobs (vm_uuid, state);
)sql",
};
static_assert(std::size(kMigrations) == JobStore::kSchemaVersion);

constexpr const char* kJobColumns =
    "id, vm, type, source_host, dest_host, state, bytes_total, bytes_done, rate, eta_seconds, "
    "pause_ms, created_ms, started_ms, ended_ms, error, result, params, state_data, "
    "cancel_requested, lease_pid, lease_start, lease_expires_ms, vm_uuid";

std::int64_t to_ms(TimePoint t) {
  return duration_cast<milliseconds>(t.time_since_epoch()).count();
}
TimePoint from_ms(std::int64_t ms) {
  return TimePoint(duration_cast<TimePoint::duration>(milliseconds(ms)));
}
std::int64_t now_ms() { return to_ms(std::chrono::system_clock::now()); }

std::string store_name(sqlite3* db) {
  const char* name = sqlite3_db_filename(db, "main");
  return name != nullptr && *name != '\0' ? name : "(in memory)";
}

// Throws Error(kIo) with what was being done and SQLite's message.
[[noreturn]] void fail(sqlite3* db, std::string_view what) {
  throw Error(ErrorCode::kIo,
              fmt::format("job store {}: {}: {}", store_name(db), what, sqlite3_errmsg(db)));
}

[[noreturn]] void no_such_job(sqlite3* db, std::int64_t id) {
  throw Error(ErrorCode::kNotFound,
              fmt::format("there is no job {} in the job store {}", id, store_name(db)));
}

void exec(sqlite3* db, const std::string& sql, std::string_view what) {
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) fail(db, what);
}

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

// A prepared statement; errors name what was being done.
class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql, std::string_view what) : db_(db), what_(what) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr) !=
        SQLITE_OK)
      fail(db, what_);
    stmt_.reset(raw);
  }

  // Binds the arguments to parameters 1, 2, ...
  template <typename... Args>
  Stmt& bind(const Args&... args) {
    int index = 1;
    (bind_one(index++, args), ...);
    return *this;
  }

  // True while there is a row to read.
  bool step() {
    int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, what_);
  }
  // Runs a statement that returns no rows.
  void run() {
    while (step()) {
    }
  }
  // Makes the statement ready to bind and run again.
  void reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
  }

  bool is_null(int col) { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
  std::int64_t i64(int col) { return sqlite3_column_int64(stmt_.get(), col); }
  double real(int col) { return sqlite3_column_double(stmt_.get(), col); }
  std::string text(int col) {
    const unsigned char* p = sqlite3_column_text(stmt_.get(), col);
    if (p == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<std::size_t>(sqlite3_column_bytes(stmt_.get(), col)));
  }
  std::optional<std::int64_t> opt_i64(int col) {
    if (is_null(col)) return std::nullopt;
    return i64(col);
  }
  std::optional<double> opt_real(int col) {
    if (is_null(col)) return std::nullopt;
    return real(col);
  }

 private:
  struct Finalize {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
  };

  template <typename T>
  void bind_one(int index, const T& value) {
    sqlite3_stmt* s = stmt_.get();
    int rc;
    if constexpr (std::is_same_v<T, std::nullopt_t>) {
      rc = sqlite3_bind_null(s, index);
    } else if constexpr (IsOptional<T>::value) {
      if (value) {
        bind_one(index, *value);
        return;
      }
      rc = sqlite3_bind_null(s, index);
    } else if constexpr (std::is_same_v<T, bool>) {
      rc = sqlite3_bind_int(s, index, value ? 1 : 0);
    } else if constexpr (std::is_integral_v<T>) {
      rc = sqlite3_bind_int64(s, index, static_cast<sqlite3_int64>(value));
    } else if constexpr (std::is_floating_point_v<T>) {
      rc = sqlite3_bind_double(s, index, static_cast<double>(value));
    } else {
      std::string_view text(value);
      // A null pointer would bind SQL NULL, not an empty string.
      const char* data = text.data() != nullptr ? text.data() : "";
      rc = sqlite3_bind_text(s, index, data, static_cast<int>(text.size()), SQLITE_TRANSIENT);
    }
    if (rc != SQLITE_OK) fail(db_, what_);
  }

  sqlite3* db_;
  std::string what_;
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
};

// A transaction that rolls back unless committed. Changes take the write
// lock at BEGIN (IMMEDIATE): a read that later writes could otherwise fail
// with SQLITE_BUSY instead of waiting its turn.
class Transaction {
 public:
  enum Kind { kRead, kWrite };
  Transaction(sqlite3* db, Kind kind, std::string_view what) : db_(db), what_(what) {
    exec(db_, kind == kWrite ? "BEGIN IMMEDIATE" : "BEGIN", what_);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    exec(db_, "COMMIT", what_);
    open_ = false;
  }

 private:
  sqlite3* db_;
  std::string what_;
  bool open_ = true;
};

JobState parse_job_state(sqlite3* db, std::int64_t id, const std::string& s) {
  if (auto state = job_state_from(s)) return *state;
  throw Error(ErrorCode::kBadData,
              fmt::format("job store {}: job {} has an unknown state '{}'", store_name(db), id, s));
}

StepState parse_step_state(sqlite3* db, std::int64_t id, const std::string& s) {
  if (auto state = step_state_from(s)) return *state;
  throw Error(ErrorCode::kBadData,
              fmt::format("job store {}: a step of job {} has an unknown state '{}'",
                          store_name(db), id, s));
}

LimitClass parse_limit_class(sqlite3* db, std::int64_t id, const std::string& s) {
  for (LimitClass c : {LimitClass::kStorage, LimitClass::kLive}) {
    if (to_string(c) == s) return c;
  }
  throw Error(ErrorCode::kBadData,
              fmt::format("job store {}: a slot of job {} has an unknown class '{}'",
                          store_name(db), id, s));
}

// The start time (field 22 of /proc/PID/stat) of a process that exists and
// is not a zombie (a zombie has finished: it only waits to be reaped).
std::optional<std::int64_t> process_start(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // Field 2 is the command name in parentheses, which may hold anything.
  auto paren = line.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(paren + 1));
  std::string state;
  fields >> state;  // field 3
  if (state == "Z" || state == "X" || state == "x") return std::nullopt;
  std::string field;
  for (int i = 4; i <= 22; ++i) fields >> field;
  if (!fields) return std::nullopt;
  std::int64_t start = 0;
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), start);
  if (ec != std::errc() || end != field.data() + field.size()) return std::nullopt;
  return start;
}

bool process_alive(std::int64_t pid, std::int64_t start) {
  if (pid <= 0) return false;
  return process_start(fmt::format("/proc/{}/stat", pid)) == start;
}

std::optional<Lease> lease_of(Stmt& s, int pid_col, int start_col, int expires_col) {
  if (s.is_null(pid_col)) return std::nullopt;
  return Lease{.pid = s.i64(pid_col),
               .pid_start = s.i64(start_col),
               .expires = from_ms(s.opt_i64(expires_col).value_or(0))};
}

// Reads a row selected with kJobColumns (without steps and slots).
Job read_job_row(sqlite3* db, Stmt& s) {
  Job job;
  job.id = s.i64(0);
  job.vm = s.text(1);
  job.type = s.text(2);
  job.source_host = s.text(3);
  job.dest_host = s.text(4);
  job.state = parse_job_state(db, job.id, s.text(5));
  job.bytes_total = s.i64(6);
  job.bytes_done = s.i64(7);
  job.rate = s.real(8);
  job.eta_seconds = s.opt_real(9);
  job.pause_ms = s.opt_i64(10);
  job.created = from_ms(s.i64(11));
  if (auto ms = s.opt_i64(12)) job.started = from_ms(*ms);
  if (auto ms = s.opt_i64(13)) job.ended = from_ms(*ms);
  job.error = s.text(14);
  job.result = s.text(15);
  job.params = s.text(16);
  job.state_data = s.text(17);
  job.cancel_requested = s.i64(18) != 0;
  job.lease = lease_of(s, 19, 20, 21);
  job.vm_uuid = s.text(22);
  return job;
}

std::vector<Slot> read_slots(sqlite3* db, std::int64_t id) {
  Stmt s(db, "SELECT host, kind FROM job_slots WHERE job_id = ? ORDER BY idx",
         fmt::format("could not read the slots of job {}", id));
  s.bind(id);
  std::vector<Slot> slots;
  while (s.step())
    slots.push_back({.host = s.text(0), .kind = parse_limit_class(db, id, s.text(1))});
  return slots;
}

void read_details(sqlite3* db, Job& job) {
  Stmt s(db,
         "SELECT name, state, started_ms, ended_ms, detail FROM job_steps WHERE job_id = ? "
         "ORDER BY idx",
         fmt::format("could not read the steps of job {}", job.id));
  s.bind(job.id);
  while (s.step()) {
    Step step{.name = s.text(0), .state = parse_step_state(db, job.id, s.text(1))};
    if (auto ms = s.opt_i64(2)) step.started = from_ms(*ms);
    if (auto ms = s.opt_i64(3)) step.ended = from_ms(*ms);
    step.detail = s.text(4);
    job.steps.push_back(std::move(step));
  }
  job.slots = read_slots(db, job.id);
}

// Full jobs from a statement that selects kJobColumns.
std::vector<Job> read_jobs(sqlite3* db, Stmt& s) {
  std::vector<Job> jobs;
  while (s.step()) jobs.push_back(read_job_row(db, s));
  for (Job& job : jobs) read_details(db, job);
  return jobs;
}

Job read_job(sqlite3* db, std::int64_t id) {
  Stmt s(db, fmt::format("SELECT {} FROM jobs WHERE id = ?", kJobColumns),
         fmt::format("could not read job {}", id));
  s.bind(id);
  std::vector<Job> jobs = read_jobs(db, s);
  if (jobs.empty()) no_such_job(db, id);
  return std::move(jobs.front());
}

JobState read_state(sqlite3* db, std::int64_t id) {
  Stmt s(db, "SELECT state FROM jobs WHERE id = ?", fmt::format("could not read job {}", id));
  s.bind(id);
  if (!s.step()) no_such_job(db, id);
  return parse_job_state(db, id, s.text(0));
}

// Running or cancelling jobs with a live lease that hold the slot.
std::vector<std::int64_t> live_holders(sqlite3* db, const Slot& slot) {
  Stmt s(db,
         "SELECT j.id, j.lease_pid, j.lease_start, j.lease_expires_ms FROM jobs j "
         "JOIN job_slots s ON s.job_id = j.id "
         "WHERE s.host = ? AND s.kind = ? AND j.state IN ('running', 'cancelling') ORDER BY j.id",
         fmt::format("could not count the jobs on {} ({})", slot.host, to_string(slot.kind)));
  s.bind(slot.host, to_string(slot.kind));
  std::vector<std::int64_t> ids;
  while (s.step()) {
    auto lease = lease_of(s, 1, 2, 3);
    if (lease && JobStore::lease_alive(*lease)) ids.push_back(s.i64(0));
  }
  return ids;
}

// Older queued jobs, whose waiter is alive, that need one of the slots of id.
std::vector<std::int64_t> queued_ahead(sqlite3* db, std::int64_t id) {
  Stmt s(db,
         "SELECT DISTINCT j.id, j.waiter_pid, j.waiter_start FROM jobs j "
         "JOIN job_slots s ON s.job_id = j.id "
         "JOIN job_slots mine ON mine.host = s.host AND mine.kind = s.kind "
         "WHERE mine.job_id = ?1 AND j.state = 'queued' AND j.id < ?1 ORDER BY j.id",
         fmt::format("could not read the jobs queued before job {}", id));
  s.bind(id);
  std::vector<std::int64_t> ids;
  while (s.step()) {
    if (!s.is_null(1) && process_alive(s.i64(1), s.i64(2))) ids.push_back(s.i64(0));
  }
  return ids;
}

// Another active job of a VM: running or cancelling (also when its process
// died: its undo is still to come), or queued with a live waiter (with
// older_only, only one queued before self).
struct VmHolder {
  std::int64_t id = 0;
  std::string vm, type, state;
  std::optional<std::int64_t> pid;
  bool alive = true;
};

std::optional<VmHolder> vm_holder(sqlite3* db, const std::string& uuid, std::int64_t self,
                                  bool older_only) {
  if (uuid.empty()) return std::nullopt;
  Stmt s(db,
         "SELECT id, vm, type, state, lease_pid, lease_start, waiter_pid, waiter_start FROM jobs "
         "WHERE vm_uuid = ?1 AND id != ?2 AND (state IN ('running', 'cancelling') OR "
         "(state = 'queued' AND (?3 = 0 OR id < ?2))) ORDER BY id",
         fmt::format("could not look for the other jobs of VM {}", uuid));
  s.bind(uuid, self, older_only);
  while (s.step()) {
    VmHolder h{.id = s.i64(0), .vm = s.text(1), .type = s.text(2), .state = s.text(3)};
    if (h.state == "queued") {
      if (s.is_null(6) || !process_alive(s.i64(6), s.i64(7))) continue;  // orphaned
      h.pid = s.i64(6);
    } else {
      h.pid = s.opt_i64(4);
      h.alive = h.pid && process_alive(s.i64(4), s.i64(5));
    }
    return h;
  }
  return std::nullopt;
}

std::string vm_busy(const VmHolder& h, const std::string& uuid) {
  std::string who = !h.alive ? "; its vmshift process died: the next `vmshift jobs` recovers it"
                    : h.pid  ? fmt::format(", vmshift process {}", *h.pid)
                             : "";
  return fmt::format(
      "VM {} (UUID {}) already has an active job: job {} ({}, {}{}); a VM has one job at a "
      "time: wait for it (`vmshift jobs wait {}`) or cancel it (`vmshift jobs cancel {}`)",
      h.vm, uuid, h.id, h.type, h.state, who, h.id, h.id);
}

std::string read_uuid(sqlite3* db, std::int64_t id) {
  Stmt s(db, "SELECT vm_uuid FROM jobs WHERE id = ?", fmt::format("could not read job {}", id));
  s.bind(id);
  if (!s.step()) no_such_job(db, id);
  return s.text(0);
}

// Inside a write transaction: fails unless this process holds the lease of id.
void check_owner(sqlite3* db, std::int64_t id, const Lease& own) {
  Stmt s(db, "SELECT state, lease_pid, lease_start FROM jobs WHERE id = ?",
         fmt::format("could not read job {}", id));
  s.bind(id);
  if (!s.step()) no_such_job(db, id);
  if (s.is_null(1)) {
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("job {} is {} and not held by this vmshift process", id, s.text(0)));
  }
  if (s.i64(1) != own.pid || s.i64(2) != own.pid_start) {
    throw Error(
        ErrorCode::kFailedPrecondition,
        fmt::format("job {} is now handled by another vmshift process (pid {})", id, s.i64(1)));
  }
}

// One of the owner's changes: checks the lease, applies change, renews the
// lease, all in one transaction.
template <typename F>
void owner_change(sqlite3* db, std::int64_t id, const std::string& what, F&& change) {
  Lease own = JobStore::own_lease();
  Transaction tx(db, Transaction::kWrite, what);
  check_owner(db, id, own);
  change();
  Stmt renew(db, "UPDATE jobs SET lease_expires_ms = ? WHERE id = ?", what);
  renew.bind(to_ms(own.expires), id).run();
  tx.commit();
}

int user_version(sqlite3* db) {
  Stmt s(db, "PRAGMA user_version", "could not read the schema version");
  if (!s.step()) fail(db, "could not read the schema version");
  return static_cast<int>(s.i64(0));
}

void refuse_newer(sqlite3* db, int version) {
  if (version > JobStore::kSchemaVersion) {
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("the job store {} has schema version {}, but this vmshift knows only "
                            "versions up to {}: use a newer vmshift",
                            store_name(db), version, JobStore::kSchemaVersion));
  }
}

// Brings the schema to kSchemaVersion; one process does it, others wait.
void migrate(sqlite3* db) {
  if (user_version(db) == JobStore::kSchemaVersion) return;
  Transaction tx(db, Transaction::kWrite, "could not upgrade the schema");
  int version = user_version(db);
  refuse_newer(db, version);
  if (version < 0) {
    throw Error(ErrorCode::kBadData,
                fmt::format("the job store {} has schema version {}", store_name(db), version));
  }
  for (; version < JobStore::kSchemaVersion; ++version) {
    exec(db, kMigrations[version],
         fmt::format("could not upgrade the schema to version {}", version + 1));
  }
  exec(db, fmt::format("PRAGMA user_version = {}", JobStore::kSchemaVersion),
       "could not record the schema version");
  tx.commit();
}

// Switches the database to WAL mode; returns the journal mode it is in.
// Switching needs the exclusive lock, and SQLite answers SQLITE_BUSY at once,
// without its busy handler, when two connections that both read the file
// want it (processes opening a new store together): so retry until deadline.
std::string switch_to_wal(sqlite3* db, Deadline deadline) {
  std::string mode;
  bool switched = poll_until(deadline, std::chrono::milliseconds(5 + ::getpid() % 20), [&] {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &raw, nullptr);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, &sqlite3_finalize);
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt.get(), 0);
      mode = text != nullptr ? reinterpret_cast<const char*>(text) : "";
      return true;
    }
    bool busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
    if (!busy || deadline.expired()) fail(db, "could not switch to WAL mode");
    return false;
  });
  if (!switched) fail(db, "could not switch to WAL mode");
  return mode;
}

// mkdir -p; directories it creates get mode 0700.
void make_dirs(const std::string& dir) {
  for (std::size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      throw_errno(ErrorCode::kIo, errno, fmt::format("cannot create {} for the job store", prefix));
    }
  }
}

// The store's directory holds the jobs' recovery data and logs: it must be
// this user's, and private. One that others may write to (or that belongs
// to someone else) is refused: they could swap the database under us. A
// directory of ours with looser modes (e.g. 0755) is made 0700.
void make_private_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw_errno(ErrorCode::kIo, errno, fmt::format("cannot open {}", dir));
  UniqueFd owner(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) throw_errno(ErrorCode::kIo, errno, fmt::format("cannot stat {}", dir));
  if (st.st_uid != ::geteuid()) {
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("refusing the job store directory {}: it belongs to uid {}, not to "
                            "this user (uid {}); set VMSHIFT_STATE_DIR to a directory of yours",
                            dir, st.st_uid, ::geteuid()));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("refusing the job store directory {}: others may write to it (mode "
                            "{:04o}); make it 0700 (chmod 700 {}) or set VMSHIFT_STATE_DIR",
                            dir, st.st_mode & 07777, dir));
  }
  if ((st.st_mode & 07777) != 0700 && ::fchmod(fd, 0700) != 0)
    throw_errno(ErrorCode::kIo, errno, fmt::format("cannot make {} private (0700)", dir));
}

// The database file and its -wal and -shm files are 0600 (SQLite gives the
// ones it creates the database's mode; older ones may be 0644). The file is
// never opened here once it exists: closing any descriptor of it would drop
// the POSIX locks of this process's other connections to it (the job and
// its heartbeat each have one), and SQLite would then let writers overlap.
void make_private_files(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);  // new: no connection of this process has it open
  } else if (errno != EEXIST) {
    throw_errno(ErrorCode::kIo, errno, fmt::format("cannot create the job store {}", path));
  }
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::string file = path + suffix;
    struct stat st;
    if (::lstat(file.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;
      throw_errno(ErrorCode::kIo, errno, fmt::format("cannot stat {}", file));
    }
    if (!S_ISREG(st.st_mode)) {
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("refusing the job store: {} is not a regular file", file));
    }
    if ((st.st_mode & 07777) != 0600 && ::chmod(file.c_str(), 0600) != 0)
      throw_errno(ErrorCode::kIo, errno, fmt::format("cannot make {} private (0600)", file));
  }
}

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string home_dir() {
  if (std::string home = env("HOME"); !home.empty()) return home;
  std::vector<char> buf(16384);
  struct passwd pw;
  struct passwd* found = nullptr;
  if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_dir != nullptr)
    return found->pw_dir;
  return "";
}

constexpr const char* kActive = "('running', 'cancelling')";

}  // namespace

void JobStore::Close::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

JobStore::JobStore(sqlite3* db) : db_(db) {}
JobStore::JobStore(JobStore&&) noexcept = default;
JobStore& JobStore::operator=(JobStore&&) noexcept = default;
JobStore::~JobStore() = default;

std::string JobStore::default_path() {
  if (std::string dir = env("VMSHIFT_STATE_DIR"); !dir.empty()) return dir + "/jobs.db";
  // The XDG base directory spec ignores relative paths.
  if (std::string dir = env("XDG_STATE_HOME"); !dir.empty() && dir.front() == '/')
    return dir + "/vmshift/jobs.db";
  std::string home = home_dir();
  if (home.empty()) {
    throw Error(ErrorCode::kNotFound,
                "cannot place the job store: VMSHIFT_STATE_DIR, XDG_STATE_HOME and HOME are not "
                "set and the user has no home directory");
  }
  return home + "/.local/state/vmshift/jobs.db";
}

JobStore JobStore::open(const std::string& path, std::chrono::milliseconds busy_timeout) {
  if (path.empty()) throw Error(ErrorCode::kInvalidArgument, "the job store path is empty");
  std::string dir = ".";
  if (auto slash = path.rfind('/'); slash != std::string::npos)
    dir = slash > 0 ? path.substr(0, slash) : "/";
  make_dirs(dir);
  make_private_dir(dir);
  make_private_files(path);

  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  JobStore store(raw);  // owns the handle, which SQLite returns even on most failures
  if (rc != SQLITE_OK) {
    throw Error(ErrorCode::kIo,
                fmt::format("cannot open the job store {}: {}", path,
                            raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3* db = raw;
  if (sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count())) != SQLITE_OK)
    fail(db, "could not set the busy timeout");
  // Refuse a newer database before changing anything in it.
  refuse_newer(db, user_version(db));

  std::string mode = switch_to_wal(db, Deadline::after(std::chrono::seconds(10)));
  if (mode != "wal") {
    throw Error(ErrorCode::kIo,
                fmt::format("job store {}: could not switch to WAL mode (the journal mode is '{}')",
                            path, mode));
  }
  exec(db, "PRAGMA foreign_keys = ON", "could not enable foreign keys");
  exec(db, "PRAGMA synchronous = NORMAL", "could not set the synchronous mode");
  migrate(db);
  return store;
}

std::string JobStore::path() const { return store_name(db_.get()); }

Lease JobStore::own_lease() {
  auto start = process_start("/proc/self/stat");
  if (!start) {
    throw Error(ErrorCode::kIo, "cannot read this process's start time from /proc/self/stat");
  }
  return Lease{.pid = ::getpid(),
               .pid_start = *start,
               .expires = std::chrono::system_clock::now() + kLeaseTime};
}

bool JobStore::lease_alive(const Lease& lease) {
  // Not the expiry: a clock that jumps forward, or a renewal that came
  // late, must not let another process "recover" a job that still runs.
  return process_alive(lease.pid, lease.pid_start);
}

std::int64_t JobStore::create(const NewJob& job) {
  sqlite3* db = db_.get();
  Lease own = own_lease();
  std::string what = fmt::format("could not create a job for VM {}", job.vm);
  Transaction tx(db, Transaction::kWrite, what);
  if (auto other = vm_holder(db, job.vm_uuid, 0, false)) {
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("refused: {}. Nothing was changed.", vm_busy(*other, job.vm_uuid)));
  }
  Stmt insert(db,
              "INSERT INTO jobs (vm, type, source_host, dest_host, state, created_ms, params, "
              "waiter_pid, waiter_start, vm_uuid) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
              what);
  insert.bind(job.vm, job.type, job.source_host, job.dest_host, now_ms(), job.params, own.pid,
              own.pid_start, job.vm_uuid);
  insert.run();
  std::int64_t id = sqlite3_last_insert_rowid(db);

  Stmt step(db, "INSERT INTO job_steps (job_id, idx, name, state) VALUES (?, ?, ?, 'pending')",
            what);
  for (std::size_t i = 0; i < job.steps.size(); ++i) {
    step.reset();
    step.bind(id, i, job.steps[i]).run();
  }
  // A job holds a (host, class) slot once, however often it is listed.
  std::vector<Slot> slots;
  for (const Slot& slot : job.slots) {
    if (std::find(slots.begin(), slots.end(), slot) == slots.end()) slots.push_back(slot);
  }
  Stmt slot(db, "INSERT INTO job_slots (job_id, idx, host, kind) VALUES (?, ?, ?, ?)", what);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    slot.reset();
    slot.bind(id, i, slots[i].host, to_string(slots[i].kind)).run();
  }
  tx.commit();
  return id;
}

Job JobStore::get(std::int64_t id) {
  sqlite3* db = db_.get();
  Transaction tx(db, Transaction::kRead, fmt::format("could not read job {}", id));
  Job job = read_job(db, id);
  tx.commit();
  return job;
}

std::vector<Job> JobStore::list(int limit) {
  sqlite3* db = db_.get();
  Transaction tx(db, Transaction::kRead, "could not list the jobs");
  Stmt s(db, fmt::format("SELECT {} FROM jobs ORDER BY id DESC LIMIT ?", kJobColumns),
         "could not list the jobs");
  s.bind(limit);  // negative: no limit
  std::vector<Job> jobs = read_jobs(db, s);
  tx.commit();
  return jobs;
}

bool JobStore::try_start(std::int64_t id, const LimitFn& limits) {
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not start job {}", id);
  // Slots never change once created: ask for the limits before taking the
  // write lock, so that the caller's function never runs under it.
  std::vector<Slot> slots;
  {
    Transaction tx(db, Transaction::kRead, what);
    read_state(db, id);
    slots = read_slots(db, id);
    tx.commit();
  }
  std::vector<int> limit;
  for (const Slot& slot : slots) limit.push_back(limits(slot.host, slot.kind));

  Lease own = own_lease();
  Transaction tx(db, Transaction::kWrite, what);
  JobState state = read_state(db, id);
  if (state != JobState::kQueued) {
    throw Error(
        ErrorCode::kFailedPrecondition,
        fmt::format("job {} is {}, not queued: it cannot be started", id, to_string(state)));
  }
  std::string uuid = read_uuid(db, id);
  if (auto other = vm_holder(db, uuid, id, true)) {
    // Refused, as virsh and Proxmox refuse a second migration of a VM:
    // waiting could start it on a VM that another job has moved meanwhile.
    std::string msg = fmt::format("refused: {}; nothing was changed", vm_busy(*other, uuid));
    Stmt(db,
         "UPDATE jobs SET state = 'cancelled', ended_ms = ?, error = ?, waiter_pid = NULL, "
         "waiter_start = NULL WHERE id = ?",
         what)
        .bind(now_ms(), msg, id)
        .run();
    tx.commit();
    throw Error(ErrorCode::kFailedPrecondition, fmt::format("job {} was {}", id, msg));
  }
  bool room = true;
  for (std::size_t i = 0; i < slots.size() && room; ++i) {
    room = static_cast<std::int64_t>(live_holders(db, slots[i]).size()) < limit[i];
  }
  if (room) room = queued_ahead(db, id).empty();
  if (room) {
    Stmt start(db,
               "UPDATE jobs SET state = 'running', started_ms = ?, lease_pid = ?, lease_start = ?, "
               "lease_expires_ms = ?, waiter_pid = NULL, waiter_start = NULL WHERE id = ?",
               what);
    start.bind(now_ms(), own.pid, own.pid_start, to_ms(own.expires), id).run();
  } else {
    // The caller waits for it now.
    Stmt wait(db, "UPDATE jobs SET waiter_pid = ?, waiter_start = ? WHERE id = ?", what);
    wait.bind(own.pid, own.pid_start, id).run();
  }
  tx.commit();
  return room;
}

std::vector<Job> JobStore::blocking(std::int64_t id) {
  sqlite3* db = db_.get();
  Transaction tx(db, Transaction::kRead, fmt::format("could not read what job {} waits for", id));
  read_state(db, id);
  std::vector<std::int64_t> ids;
  for (const Slot& slot : read_slots(db, id)) {
    for (std::int64_t other : live_holders(db, slot)) {
      if (other != id && std::find(ids.begin(), ids.end(), other) == ids.end())
        ids.push_back(other);
    }
  }
  std::sort(ids.begin(), ids.end());
  for (std::int64_t other : queued_ahead(db, id)) ids.push_back(other);
  std::vector<Job> jobs;
  for (std::int64_t other : ids) jobs.push_back(read_job(db, other));
  tx.commit();
  return jobs;
}

void JobStore::renew_lease(std::int64_t id) {
  owner_change(db_.get(), id, fmt::format("could not renew the lease of job {}", id), [] {});
}

void JobStore::set_step(std::int64_t id, std::size_t index, StepState state,
                        const std::string& detail) {
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not record step {} of job {}", index, id);
  owner_change(db, id, what, [&] {
    Stmt s(db,
           "UPDATE job_steps SET state = ?1, detail = ?2, "
           "started_ms = CASE ?1 WHEN 'running' THEN ?3 WHEN 'pending' THEN NULL "
           "ELSE started_ms END, "
           "ended_ms = CASE WHEN ?1 IN ('running', 'pending') THEN NULL ELSE ?3 END "
           "WHERE job_id = ?4 AND idx = ?5",
           what);
    s.bind(to_string(state), detail, now_ms(), id, index).run();
    if (sqlite3_changes(db) == 0) {
      Stmt count(db, "SELECT COUNT(*) FROM job_steps WHERE job_id = ?", what);
      count.bind(id);
      std::int64_t n = count.step() ? count.i64(0) : 0;
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("job {} has no step {} (it has {} steps)", id, index, n));
    }
  });
}

void JobStore::set_progress(std::int64_t id, std::int64_t done, std::int64_t total, double rate,
                            std::optional<double> eta_seconds) {
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not record the progress of job {}", id);
  owner_change(db, id, what, [&] {
    Stmt s(db,
           "UPDATE jobs SET bytes_done = ?, bytes_total = ?, rate = ?, eta_seconds = ? "
           "WHERE id = ?",
           what);
    s.bind(done, total, rate, eta_seconds, id).run();
  });
}

void JobStore::set_pause(std::int64_t id, std::int64_t pause_ms) {
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not record the pause of job {}", id);
  owner_change(db, id, what, [&] {
    Stmt(db, "UPDATE jobs SET pause_ms = ? WHERE id = ?", what).bind(pause_ms, id).run();
  });
}

void JobStore::set_state_data(std::int64_t id, const std::string& json) {
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not record the recovery data of job {}", id);
  owner_change(db, id, what, [&] {
    Stmt(db, "UPDATE jobs SET state_data = ? WHERE id = ?", what).bind(json, id).run();
  });
}

void JobStore::set_state(std::int64_t id, JobState state) {
  if (state != JobState::kRunning && state != JobState::kCancelling) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("job {} cannot be set to {}: only running and cancelling can be set "
                            "(finish ends a job)",
                            id, to_string(state)));
  }
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not set job {} to {}", id, to_string(state));
  owner_change(db, id, what, [&] {
    Stmt(db, "UPDATE jobs SET state = ? WHERE id = ?", what).bind(to_string(state), id).run();
  });
}

void JobStore::finish(std::int64_t id, JobState state, const std::string& message) {
  if (!is_terminal(state)) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("job {} cannot finish as {}: that is not a final state", id, to_string(state)));
  }
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not finish job {}", id);
  Lease own = own_lease();
  Transaction tx(db, Transaction::kWrite, what);
  // A queued job has no owner yet: the process waiting for it may end it.
  if (read_state(db, id) != JobState::kQueued) check_owner(db, id, own);
  bool completed = state == JobState::kCompleted;
  Stmt s(db,
         "UPDATE jobs SET state = ?, ended_ms = ?, error = ?, result = ?, lease_pid = NULL, "
         "lease_start = NULL, lease_expires_ms = NULL, waiter_pid = NULL, waiter_start = NULL "
         "WHERE id = ?",
         what);
  s.bind(to_string(state), now_ms(), completed ? std::string() : message,
         completed ? message : std::string(), id)
      .run();
  tx.commit();
}

bool JobStore::reopen(std::int64_t id) {
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not reopen job {}", id);
  Lease own = own_lease();
  Transaction tx(db, Transaction::kWrite, what);
  if (read_state(db, id) != JobState::kFailed) return false;
  std::string uuid = read_uuid(db, id);
  if (auto other = vm_holder(db, uuid, id, false)) {
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("job {} cannot run again now: {}", id, vm_busy(*other, uuid)));
  }
  Stmt(db,
       "UPDATE jobs SET state = 'queued', ended_ms = NULL, error = '', result = '', "
       "cancel_requested = 0, waiter_pid = ?, waiter_start = ? WHERE id = ?",
       what)
      .bind(own.pid, own.pid_start, id)
      .run();
  tx.commit();
  return true;
}

bool JobStore::request_cancel(std::int64_t id) {
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not cancel job {}", id);
  Transaction tx(db, Transaction::kWrite, what);
  JobState state = read_state(db, id);
  if (is_terminal(state)) return false;
  if (state == JobState::kQueued) {
    Stmt s(db,
           "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, ended_ms = ?, error = ?, "
           "waiter_pid = NULL, waiter_start = NULL WHERE id = ?",
           what);
    s.bind(now_ms(), "cancelled while queued; nothing was changed", id).run();
  } else {
    Stmt(db, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?", what).bind(id).run();
  }
  tx.commit();
  return true;
}

std::optional<std::int64_t> JobStore::waiter(std::int64_t id) {
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not read job {}", id);
  Transaction tx(db, Transaction::kRead, what);
  Stmt s(db, "SELECT waiter_pid FROM jobs WHERE id = ?", what);
  s.bind(id);
  if (!s.step() || s.is_null(0)) return std::nullopt;
  return s.i64(0);
}

std::vector<std::int64_t> JobStore::orphaned() {
  sqlite3* db = db_.get();
  Transaction tx(db, Transaction::kRead, "could not look for orphaned jobs");
  Stmt s(db, "SELECT id, waiter_pid, waiter_start FROM jobs WHERE state = 'queued' ORDER BY id",
         "could not look for orphaned jobs");
  std::vector<std::int64_t> ids;
  while (s.step())
    if (s.is_null(1) || !process_alive(s.i64(1), s.i64(2))) ids.push_back(s.i64(0));
  return ids;
}

bool JobStore::cancel_orphan(std::int64_t id, const std::string& message) {
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not cancel orphaned job {}", id);
  Transaction tx(db, Transaction::kWrite, what);
  Stmt read(db, "SELECT waiter_pid, waiter_start FROM jobs WHERE id = ? AND state = 'queued'",
            what);
  read.bind(id);
  if (!read.step()) return false;
  if (!read.is_null(0) && process_alive(read.i64(0), read.i64(1))) return false;
  read.reset();
  Stmt(db,
       "UPDATE jobs SET state = 'cancelled', ended_ms = ?, error = ?, waiter_pid = NULL, "
       "waiter_start = NULL WHERE id = ? AND state = 'queued'",
       what)
      .bind(now_ms(), message, id)
      .run();
  bool done = sqlite3_changes(db) == 1;
  tx.commit();
  return done;
}

std::vector<Job> JobStore::stale() {
  sqlite3* db = db_.get();
  Transaction tx(db, Transaction::kRead, "could not look for stale jobs");
  Stmt s(db, fmt::format("SELECT {} FROM jobs WHERE state IN {} ORDER BY id", kJobColumns, kActive),
         "could not look for stale jobs");
  std::vector<Job> jobs = read_jobs(db, s);
  tx.commit();
  std::erase_if(jobs, [](const Job& job) { return job.lease && lease_alive(*job.lease); });
  return jobs;
}

bool JobStore::take_over(std::int64_t id) {
  sqlite3* db = db_.get();
  std::string what = fmt::format("could not take over job {}", id);
  Lease own = own_lease();
  Transaction tx(db, Transaction::kWrite, what);
  Stmt read(db,
            fmt::format("SELECT lease_pid, lease_start, lease_expires_ms FROM jobs "
                        "WHERE id = ? AND state IN {}",
                        kActive),
            what);
  read.bind(id);
  if (!read.step()) {
    read_state(db, id);  // throws kNotFound for a missing job
    return false;        // not running any more
  }
  std::optional<Lease> lease = lease_of(read, 0, 1, 2);
  if (lease && lease_alive(*lease)) return false;
  std::optional<std::int64_t> seen_pid = read.opt_i64(0);
  std::optional<std::int64_t> seen_start = read.opt_i64(1);
  std::optional<std::int64_t> seen_expires = read.opt_i64(2);
  read.reset();
  // Compare and set: only the lease that was seen stale is replaced.
  Stmt set(db,
           fmt::format("UPDATE jobs SET lease_pid = ?, lease_start = ?, lease_expires_ms = ? "
                       "WHERE id = ? AND state IN {} AND lease_pid IS ? AND lease_start IS ? "
                       "AND lease_expires_ms IS ?",
                       kActive),
           what);
  set.bind(own.pid, own.pid_start, to_ms(own.expires), id, seen_pid, seen_start, seen_expires)
      .run();
  bool taken = sqlite3_changes(db) == 1;
  tx.commit();
  return taken;
}

}  // namespace vmshift::core
