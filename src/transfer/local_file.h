// An image file vmshift sees itself: extents found with SEEK_DATA and
// SEEK_HOLE, holes written by leaving (or punching) them.
#pragma once

#include "transfer/endpoint.h"

namespace vmshift::transfer {

class LocalFile : public Endpoint {
 public:
  explicit LocalFile(std::string path) : path_(std::move(path)) {}
  std::string describe() const override { return path_; }
  bool exists() override;
  std::uint64_t length() override;
  std::uint64_t allocated() override;
  void create(std::uint64_t length) override;
  void remove() override;
  std::unique_ptr<RangeReader> read(std::uint64_t offset, std::uint64_t length) override;
  std::unique_ptr<RangeWriter> write(std::uint64_t offset, std::uint64_t length) override;

 private:
  std::string path_;
};

}  // namespace vmshift::transfer
