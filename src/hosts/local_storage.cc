#include "hosts/local_storage.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>

#include "base/error.h"
#include "base/subprocess.h"
#include "base/unique_fd.h"

namespace vmshift::hosts {

std::string FileIdentity::describe() const {
  if (basis == "inode")
    return fmt::format("device {} inode {}{}", device, inode,
                       birth_ns != 0 ? fmt::format(" born {} ns", birth_ns) : "");
  return fmt::format("volume {}{}", key, birth_ns != 0 ? fmt::format(" born {} ns", birth_ns) : "");
}

std::optional<FileIdentity> local_identity(const std::string& path) {
  struct statx sx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME, &sx) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw_errno(ErrorCode::kIo, errno, fmt::format("cannot look at '{}'", path));
  }
  FileIdentity id;
  id.basis = "inode";
  id.device = (static_cast<std::uint64_t>(sx.stx_dev_major) << 32) | sx.stx_dev_minor;
  id.inode = sx.stx_ino;
  if ((sx.stx_mask & STATX_BTIME) != 0)
    id.birth_ns =
        static_cast<std::int64_t>(sx.stx_btime.tv_sec) * 1000000000 + sx.stx_btime.tv_nsec;
  return id;
}

std::optional<FileIdentity> LocalStorage::identity(const std::string& path) {
  return local_identity(path);
}

bool LocalStorage::exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::optional<std::uint64_t> LocalStorage::free_bytes(const std::string& dir) {
  struct statvfs s {};
  if (::statvfs(dir.c_str(), &s) != 0)
    throw_errno(ErrorCode::kNotFound, errno, fmt::format("cannot reach directory '{}'", dir));
  return static_cast<std::uint64_t>(s.f_bavail) * s.f_frsize;
}

void LocalStorage::remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw_errno(ErrorCode::kIo, errno, fmt::format("cannot delete '{}'", path));
}

bool LocalStorage::same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  // stat follows links: the device and inode of the file itself.
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

std::optional<std::uint64_t> LocalStorage::allocation(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

void LocalStorage::create_image(const NewImage& image) {
  // The file is made here, without following a link (O_EXCL | O_NOFOLLOW),
  // and qemu-img writes the image into that very file through this
  // process's descriptor (/proc/PID/fd/N): a link planted at the path in
  // between is never followed.
  UniqueFd fd(
      ::open(image.path.c_str(), O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0600));
  if (!fd) {
    if (errno == EEXIST || errno == ELOOP)
      throw Error(ErrorCode::kAlreadyExists, fmt::format("'{}' already exists", image.path));
    throw_errno(ErrorCode::kIo, errno, fmt::format("cannot create '{}'", image.path));
  }
  struct stat made {};
  if (::fstat(fd.get(), &made) != 0)
    throw_errno(ErrorCode::kIo, errno, fmt::format("cannot stat '{}'", image.path));
  // Whether the path still names the file made above.
  auto still_ours = [&] {
    struct stat now {};
    return ::lstat(image.path.c_str(), &now) == 0 && now.st_dev == made.st_dev &&
           now.st_ino == made.st_ino;
  };
  Argv argv = {"qemu-img", "create", "-q", "-f", image.format};
  if (!image.backing.empty())
    argv.insert(argv.end(), {"-b", image.backing, "-F",
                             image.backing_format.empty() ? "raw" : image.backing_format});
  argv.insert(argv.end(), {fmt::format("/proc/{}/fd/{}", ::getpid(), fd.get()),
                           std::to_string(image.capacity)});
  try {
    run_checked(argv, Deadline::after(std::chrono::seconds(60)));
  } catch (const Error&) {
    if (still_ours()) ::unlink(image.path.c_str());
    throw;
  }
  if (!still_ours())
    throw Error(ErrorCode::kAlreadyExists,
                fmt::format("'{}' was replaced while vmshift created it (by a link or another "
                            "file, which were left as they are): refusing to use it",
                            image.path));
}

}  // namespace vmshift::hosts
