// An image file on a libvirt host, read and written through storage volume
// streams with holes (virStorageVolDownload/Upload, sparse): the bytes go
// from one host's libvirtd to vmshift to the other's, and vmshift needs no
// access to either host's files.
#pragma once

#include <memory>

#include "hosts/libvirt_storage.h"
#include "transfer/endpoint.h"

namespace vmshift::transfer {

class LibvirtVolume : public Endpoint {
 public:
  // storage must outlive this endpoint.
  LibvirtVolume(hosts::LibvirtStorage& storage, std::string path);
  std::string describe() const override;
  bool exists() override;
  std::uint64_t length() override;
  std::uint64_t allocated() override;
  void create(std::uint64_t length) override;
  void remove() override;
  std::unique_ptr<RangeReader> read(std::uint64_t offset, std::uint64_t length) override;
  std::unique_ptr<RangeWriter> write(std::uint64_t offset, std::uint64_t length) override;

 private:
  hosts::Volume vol();  // throws Error(kNotFound)
  hosts::LibvirtStorage& storage_;
  std::string path_;
};

}  // namespace vmshift::transfer
