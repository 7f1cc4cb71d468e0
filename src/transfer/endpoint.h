// One image file on one host, as the copy engine reads and writes it: by
// byte range, as a sequence of data and holes (the file's own sparseness).
// The engine copies the file's bytes, so a qcow2 stays a qcow2 with its
// cluster size, and a sparse raw file stays sparse.
//
//   LibvirtVolume  a file in a storage pool of a libvirt host, through
//                  volume streams (works from a machine that sees neither
//                  host's files)
//   LocalFile      a file vmshift sees itself (bare QEMU guests, tests)
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace vmshift::transfer {

// What a read yields next: `bytes` of data (in the caller's buffer), a hole
// of `bytes` zeros, or the end of the range.
struct Piece {
  enum Kind { kData, kHole, kEnd };
  Kind kind = kEnd;
  std::uint64_t bytes = 0;
};

class RangeReader {
 public:
  virtual ~RangeReader() = default;
  // Data fills the front of buf (never more than buf.size() bytes).
  virtual Piece next(std::span<char> buf) = 0;
  virtual void finish() = 0;
};

class RangeWriter {
 public:
  virtual ~RangeWriter() = default;
  virtual void data(std::span<const char> bytes) = 0;
  virtual void hole(std::uint64_t bytes) = 0;
  // Makes what was written durable; an unfinished writer is abandoned.
  virtual void finish() = 0;
};

class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual std::string describe() const = 0;  // "host2:/var/lib/libvirt/images/a.qcow2"
  virtual bool exists() = 0;
  // The file's length in bytes (not the image's virtual size).
  virtual std::uint64_t length() = 0;
  // Bytes the file occupies on its storage.
  virtual std::uint64_t allocated() = 0;
  // Makes an empty sparse file of `length` bytes (replacing none: throws
  // Error(kAlreadyExists) if the file exists).
  virtual void create(std::uint64_t length) = 0;
  virtual void remove() = 0;
  virtual std::unique_ptr<RangeReader> read(std::uint64_t offset, std::uint64_t length) = 0;
  virtual std::unique_ptr<RangeWriter> write(std::uint64_t offset, std::uint64_t length) = 0;
};

}  // namespace vmshift::transfer
