#include "transfer/libvirt_volume.h"

#include <fmt/format.h>

#include "base/error.h"
#include "base/log.h"

namespace vmshift::transfer {
namespace {

struct StreamFree {
  void operator()(virStreamPtr s) const { virStreamFree(s); }
};
using Stream = std::unique_ptr<virStream, StreamFree>;

Stream new_stream(const hosts::Connection& conn) {
  Stream s(virStreamNew(conn.get(), 0));
  if (!s) hosts::throw_libvirt(fmt::format("cannot open a stream to host '{}'", conn.host()));
  return s;
}

class Reader : public RangeReader {
 public:
  Reader(Stream s, std::string what) : s_(std::move(s)), what_(std::move(what)) {}
  ~Reader() override {
    if (!done_) virStreamAbort(s_.get());
  }
  Piece next(std::span<char> buf) override {
    if (done_) return {};
    int n = virStreamRecvFlags(s_.get(), buf.data(), buf.size(), VIR_STREAM_RECV_STOP_AT_HOLE);
    if (n > 0) return {Piece::kData, static_cast<std::uint64_t>(n)};
    if (n == 0) {
      finish();
      return {};
    }
    if (n == -3) {
      long long hole = 0;
      if (virStreamRecvHole(s_.get(), &hole, 0) < 0)
        hosts::throw_libvirt(fmt::format("cannot read a hole of {}", what_));
      return {Piece::kHole, static_cast<std::uint64_t>(hole)};
    }
    hosts::throw_libvirt(fmt::format("cannot read {}", what_));
  }
  void finish() override {
    if (done_) return;
    done_ = true;
    if (virStreamFinish(s_.get()) != 0) hosts::throw_libvirt(fmt::format("cannot read {}", what_));
  }

 private:
  Stream s_;
  std::string what_;
  bool done_ = false;
};

class Writer : public RangeWriter {
 public:
  Writer(Stream s, std::string what) : s_(std::move(s)), what_(std::move(what)) {}
  ~Writer() override {
    if (!done_) virStreamAbort(s_.get());
  }
  void data(std::span<const char> bytes) override {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      int n = virStreamSend(s_.get(), bytes.data() + sent, bytes.size() - sent);
      if (n < 0) hosts::throw_libvirt(fmt::format("cannot write {}", what_));
      sent += static_cast<std::size_t>(n);
    }
  }
  void hole(std::uint64_t bytes) override {
    if (virStreamSendHole(s_.get(), static_cast<long long>(bytes), 0) < 0)
      hosts::throw_libvirt(fmt::format("cannot write a hole of {}", what_));
  }
  void finish() override {
    done_ = true;
    if (virStreamFinish(s_.get()) != 0) hosts::throw_libvirt(fmt::format("cannot write {}", what_));
  }

 private:
  Stream s_;
  std::string what_;
  bool done_ = false;
};

}  // namespace

LibvirtVolume::LibvirtVolume(hosts::LibvirtStorage& storage, std::string path)
    : storage_(storage), path_(std::move(path)) {}

std::string LibvirtVolume::describe() const {
  return fmt::format("{}:{}", storage_.connection().host(), path_);
}

hosts::Volume LibvirtVolume::vol() {
  hosts::Volume v = storage_.volume_at(path_);
  if (!v) throw Error(ErrorCode::kNotFound, fmt::format("there is no file {}", describe()));
  return v;
}

bool LibvirtVolume::exists() { return storage_.exists(path_); }

std::uint64_t LibvirtVolume::length() {
  virStorageVolInfo info{};
  if (virStorageVolGetInfoFlags(vol().get(), &info, VIR_STORAGE_VOL_GET_PHYSICAL) != 0)
    hosts::throw_libvirt(fmt::format("cannot get the size of {}", describe()));
  return info.allocation;  // with GET_PHYSICAL, libvirt puts the file's length here
}

std::uint64_t LibvirtVolume::allocated() {
  virStorageVolInfo info{};
  if (virStorageVolGetInfo(vol().get(), &info) != 0)
    hosts::throw_libvirt(fmt::format("cannot get the size of {}", describe()));
  return info.allocation;
}

void LibvirtVolume::create(std::uint64_t length) {
  // A raw volume of the file's length: an empty sparse file the chunks fill.
  storage_.create_image({.path = path_, .format = "raw", .capacity = length});
}

void LibvirtVolume::remove() { storage_.remove(path_); }

std::unique_ptr<RangeReader> LibvirtVolume::read(std::uint64_t offset, std::uint64_t length) {
  Stream s = new_stream(storage_.connection());
  log::Trace trace("libvirt", "virStorageVolDownload", "{} offset={} B length={} B", describe(),
                   offset, length);
  if (virStorageVolDownload(vol().get(), s.get(), offset, length,
                            VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) != 0)
    hosts::throw_libvirt(fmt::format("cannot read {}", describe()));
  return std::make_unique<Reader>(std::move(s), describe());
}

std::unique_ptr<RangeWriter> LibvirtVolume::write(std::uint64_t offset, std::uint64_t length) {
  Stream s = new_stream(storage_.connection());
  log::Trace trace("libvirt", "virStorageVolUpload", "{} offset={} B length={} B", describe(),
                   offset, length);
  if (virStorageVolUpload(vol().get(), s.get(), offset, length,
                          VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) != 0)
    hosts::throw_libvirt(fmt::format("cannot write {}", describe()));
  return std::make_unique<Writer>(std::move(s), describe());
}

}  // namespace vmshift::transfer
