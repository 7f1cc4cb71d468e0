#include "transfer/local_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/error.h"
#include "base/unique_fd.h"

namespace vmshift::transfer {
namespace {

UniqueFd open_file(const std::string& path, int flags, mode_t mode = 0) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, mode));
  if (!fd) throw_errno(ErrorCode::kIo, errno, fmt::format("cannot open '{}'", path));
  return fd;
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw_errno(ErrorCode::kNotFound, errno, fmt::format("cannot stat '{}'", path));
  return st;
}

class Reader : public RangeReader {
 public:
  Reader(std::string path, std::uint64_t offset, std::uint64_t length)
      : path_(std::move(path)), fd_(open_file(path_, O_RDONLY)), pos_(offset) {
    std::uint64_t size = static_cast<std::uint64_t>(stat_of(path_).st_size);
    end_ = std::min(offset + length, std::max(size, offset));
  }
  Piece next(std::span<char> buf) override {
    if (pos_ >= end_) return {};
    off_t pos = static_cast<off_t>(pos_);
    off_t data = ::lseek(fd_.get(), pos, SEEK_DATA);
    if (data < 0 && errno != ENXIO)
      throw_errno(ErrorCode::kIo, errno, fmt::format("cannot find data in '{}'", path_));
    std::uint64_t data_at = data < 0 ? end_ : static_cast<std::uint64_t>(data);
    if (data_at > pos_) {
      Piece p{Piece::kHole, std::min(data_at, end_) - pos_};
      pos_ += p.bytes;
      return p;
    }
    off_t hole = ::lseek(fd_.get(), pos, SEEK_HOLE);
    std::uint64_t hole_at = hole < 0 ? end_ : static_cast<std::uint64_t>(hole);
    std::uint64_t want = std::min<std::uint64_t>({buf.size(), hole_at - pos_, end_ - pos_});
    ssize_t n = ::pread(fd_.get(), buf.data(), static_cast<std::size_t>(want), pos);
    if (n < 0) throw_errno(ErrorCode::kIo, errno, fmt::format("cannot read '{}'", path_));
    if (n == 0) {
      pos_ = end_;
      return {};
    }
    pos_ += static_cast<std::uint64_t>(n);
    return {Piece::kData, static_cast<std::uint64_t>(n)};
  }
  void finish() override {}

 private:
  std::string path_;
  UniqueFd fd_;
  std::uint64_t pos_;
  std::uint64_t end_ = 0;
};

class Writer : public RangeWriter {
 public:
  Writer(std::string path, std::uint64_t offset)
      : path_(std::move(path)), fd_(open_file(path_, O_WRONLY)), pos_(offset) {}
  void data(std::span<const char> bytes) override {
    std::size_t written = 0;
    while (written < bytes.size()) {
      ssize_t n = ::pwrite(fd_.get(), bytes.data() + written, bytes.size() - written,
                           static_cast<off_t>(pos_ + written));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno(ErrorCode::kIo, errno, fmt::format("cannot write '{}'", path_));
      written += static_cast<std::size_t>(n);
    }
    pos_ += bytes.size();
  }
  void hole(std::uint64_t bytes) override {
    // Whatever an earlier, interrupted run wrote there goes.
    std::uint64_t size = static_cast<std::uint64_t>(stat_of(path_).st_size);
    std::uint64_t end = std::min(pos_ + bytes, size);
    if (end > pos_ && ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  static_cast<off_t>(pos_), static_cast<off_t>(end - pos_)) != 0)
      throw_errno(ErrorCode::kIo, errno, fmt::format("cannot punch a hole in '{}'", path_));
    pos_ += bytes;
    if (pos_ > size && ::ftruncate(fd_.get(), static_cast<off_t>(pos_)) != 0)
      throw_errno(ErrorCode::kIo, errno, fmt::format("cannot extend '{}'", path_));
  }
  void finish() override {
    if (::fdatasync(fd_.get()) != 0)
      throw_errno(ErrorCode::kIo, errno, fmt::format("cannot sync '{}'", path_));
  }

 private:
  std::string path_;
  UniqueFd fd_;
  std::uint64_t pos_;
};

}  // namespace

bool LocalFile::exists() {
  struct stat st {};
  return ::stat(path_.c_str(), &st) == 0;
}

std::uint64_t LocalFile::length() { return static_cast<std::uint64_t>(stat_of(path_).st_size); }

std::uint64_t LocalFile::allocated() {
  return static_cast<std::uint64_t>(stat_of(path_).st_blocks) * 512;
}

void LocalFile::create(std::uint64_t length) {
  UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd && errno == EEXIST)
    throw Error(ErrorCode::kAlreadyExists, fmt::format("'{}' already exists", path_));
  if (!fd) throw_errno(ErrorCode::kIo, errno, fmt::format("cannot create '{}'", path_));
  if (::ftruncate(fd.get(), static_cast<off_t>(length)) != 0)
    throw_errno(ErrorCode::kIo, errno, fmt::format("cannot size '{}'", path_));
}

void LocalFile::remove() {
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT)
    throw_errno(ErrorCode::kIo, errno, fmt::format("cannot delete '{}'", path_));
}

std::unique_ptr<RangeReader> LocalFile::read(std::uint64_t offset, std::uint64_t length) {
  return std::make_unique<Reader>(path_, offset, length);
}

std::unique_ptr<RangeWriter> LocalFile::write(std::uint64_t offset, std::uint64_t) {
  return std::make_unique<Writer>(path_, offset);
}

}  // namespace vmshift::transfer
