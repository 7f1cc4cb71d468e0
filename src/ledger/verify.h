// Checking a test guest's disks against what its console acknowledged.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ledger/ledger.h"

struct nbd_handle;

namespace vmshift::ledger {

// Reads `out.size()` bytes at `offset` of a disk image; throws vmshift::Error.
using ImageReader = std::function<void(std::uint64_t offset, std::span<unsigned char> out)>;

struct DiskResult {
  std::uint32_t disk_id = 0;
  std::uint64_t blocks_checked = 0;
  std::uint64_t acknowledged = 0;     // highest acknowledged seq
  std::uint64_t lost = 0;             // blocks missing an acknowledged record
  std::uint64_t corrupt = 0;          // torn, damaged, or another block's record
  std::vector<std::string> examples;  // the first few problems, as sentences
  bool ok() const { return lost == 0 && corrupt == 0; }
};

// The rules: every block of the ledger must hold a valid record of this
// disk and block whose seq is at least the newest acknowledged write to it.
DiskResult check_disk(std::uint32_t disk_id, std::uint64_t acknowledged, std::uint64_t blocks,
                      std::uint64_t image_bytes, const ImageReader& read);

// A disk image opened read-only through qemu-nbd (started by libnbd), in
// the format given: the format is never guessed. force-share lets it read
// an image a running QEMU holds (pause the guest first for a consistent view).
class NbdImage {
 public:
  NbdImage(const std::string& path, const std::string& format);
  ~NbdImage();
  NbdImage(const NbdImage&) = delete;
  NbdImage& operator=(const NbdImage&) = delete;

  std::uint64_t size() const { return size_; }
  void read(std::uint64_t offset, std::span<unsigned char> out);

 private:
  struct Close {
    void operator()(nbd_handle* h) const;
  };
  std::unique_ptr<nbd_handle, Close> handle_;
  std::string path_;
  std::uint64_t size_ = 0;
};

// qemu-nbd's argv for an image (exposed for tests).
std::vector<std::string> qemu_nbd_argv(const std::string& path, const std::string& format);

}  // namespace vmshift::ledger
