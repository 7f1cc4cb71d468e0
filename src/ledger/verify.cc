#include "ledger/verify.h"

#include <fmt/format.h>
#include <libnbd.h>

#include "base/error.h"

namespace vmshift::ledger {
namespace {

constexpr std::size_t kMaxExamples = 5;
constexpr std::size_t kChunk = 1 << 20;

void note(DiskResult& r, std::string problem) {
  if (r.examples.size() < kMaxExamples) r.examples.push_back(std::move(problem));
}

}  // namespace

DiskResult check_disk(std::uint32_t disk_id, std::uint64_t acknowledged, std::uint64_t blocks,
                      std::uint64_t image_bytes, const ImageReader& read) {
  if (blocks * kBlockSize > image_bytes)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("the image ({} bytes) is smaller than disk {}'s ledger of {} blocks",
                            image_bytes, disk_id, blocks));
  Layout layout(blocks);
  DiskResult r;
  r.disk_id = disk_id;
  r.acknowledged = acknowledged;
  std::vector<unsigned char> chunk(kChunk);
  for (std::uint64_t off = 0; off < blocks * kBlockSize; off += kChunk) {
    std::size_t len =
        static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, blocks * kBlockSize - off));
    read(off, std::span<unsigned char>(chunk.data(), len));
    for (std::size_t b = 0; b < len; b += kBlockSize) {
      std::uint64_t block = (off + b) / kBlockSize;
      ++r.blocks_checked;
      auto required = layout.required_seq(block, acknowledged);
      Decoded d = decode(std::span<const unsigned char, kBlockSize>(chunk.data() + b, kBlockSize));
      switch (d.state) {
        case BlockState::kCorrupt:
          ++r.corrupt;
          note(r, fmt::format("block {}: {}", block, d.problem));
          break;
        case BlockState::kEmpty:
          if (required) {
            ++r.lost;
            note(r, fmt::format("block {}: empty, but write {} to it was acknowledged", block,
                                *required));
          }
          break;
        case BlockState::kValid:
          if (d.record.disk_id != disk_id || d.record.block != block) {
            ++r.corrupt;
            note(r,
                 fmt::format("block {}: holds the record of disk {} block {} (a misplaced write)",
                             block, d.record.disk_id, d.record.block));
          } else if (required && d.record.seq < *required) {
            ++r.lost;
            note(r, fmt::format("block {}: holds write {}, but the newer write {} was "
                                "acknowledged (rolled back)",
                                block, d.record.seq, *required));
          }
          break;
      }
    }
  }
  return r;
}

std::vector<std::string> qemu_nbd_argv(const std::string& path, const std::string& format) {
  if (format != "qcow2" && format != "raw")
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("image format '{}' is not supported (qcow2 or raw)", format));
  // --image-opts takes key=value pairs: a comma in the path is doubled.
  std::string escaped;
  for (char c : path) escaped += c == ',' ? std::string(",,") : std::string(1, c);
  return {
      "qemu-nbd", "--read-only", "--image-opts",
      fmt::format("driver={},force-share=on,file.driver=file,file.filename={}", format, escaped)};
}

void NbdImage::Close::operator()(nbd_handle* h) const { nbd_close(h); }

NbdImage::NbdImage(const std::string& path, const std::string& format) : path_(path) {
  std::vector<std::string> args = qemu_nbd_argv(path, format);
  handle_.reset(nbd_create());
  if (!handle_) throw Error(ErrorCode::kIo, fmt::format("libnbd: {}", nbd_get_error()));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (nbd_connect_systemd_socket_activation(handle_.get(), argv.data()) == -1)
    throw Error(ErrorCode::kIo, fmt::format("cannot open '{}' as {} through qemu-nbd: {}", path,
                                            format, nbd_get_error()));
  int64_t size = nbd_get_size(handle_.get());
  if (size < 0)
    throw Error(ErrorCode::kIo, fmt::format("cannot size '{}': {}", path, nbd_get_error()));
  size_ = static_cast<std::uint64_t>(size);
}

NbdImage::~NbdImage() = default;

void NbdImage::read(std::uint64_t offset, std::span<unsigned char> out) {
  if (nbd_pread(handle_.get(), out.data(), out.size(), offset, 0) == -1)
    throw Error(ErrorCode::kIo, fmt::format("cannot read {} bytes at {} of '{}': {}", out.size(),
                                            offset, path_, nbd_get_error()));
}

}  // namespace vmshift::ledger
