#include "guest/local_storage.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>

#include "base/error.h"
#include "base/subprocess.h"

namespace vmshift::guest {

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
  if (exists(image.path))
    throw Error(ErrorCode::kAlreadyExists, fmt::format("'{}' already exists", image.path));
  Argv argv = {"qemu-img", "create", "-q", "-f", image.format};
  if (!image.backing.empty())
    argv.insert(argv.end(), {"-b", image.backing, "-F",
                             image.backing_format.empty() ? "raw" : image.backing_format});
  argv.insert(argv.end(), {image.path, std::to_string(image.capacity)});
  run_checked(argv, Deadline::after(std::chrono::seconds(60)));
}

}  // namespace vmshift::guest
