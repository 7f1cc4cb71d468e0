#include "hosts/libvirt_storage.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "hosts/xml.h"

namespace vmshift::hosts {
namespace {

std::string pool_target(virStoragePoolPtr p) {
  std::optional<std::string> xml = take_string(virStoragePoolGetXMLDesc(p, 0));
  if (!xml) return "";
  std::string path = Xml::parse(*xml).text("/pool/target/path");
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string pool_name(virStoragePoolPtr p) {
  const char* n = virStoragePoolGetName(p);
  return n != nullptr ? n : "?";
}

}  // namespace

std::string dirname_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string basename_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

LibvirtStorage::LibvirtStorage(Connection conn) : conn_(std::move(conn)) {}

LibvirtStorage::~LibvirtStorage() {
  for (auto& p : transient_) {
    log::Trace trace("libvirt", "virStoragePoolDestroy", "pool={} host='{}'", pool_name(p.get()),
                     conn_.host());
    if (virStoragePoolDestroy(p.get()) != 0)
      log::warn("storage", "cannot remove the transient pool {} on '{}'", pool_name(p.get()),
                conn_.host());
  }
}

// A directory without a pool of its own gets a transient pool, which ends
// with the vmshift process that made it; libvirt allows one pool per
// directory, so a second vmshift process borrows the first one's, and
// looks again (making its own) when that one has ended.
virStoragePoolPtr LibvirtStorage::pool_for(const std::string& dir_in) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (auto it = pools_.find(dir); it != pools_.end()) {
    if (virStoragePoolRefresh(it->second.get(), 0) == 0) return it->second.get();
    virResetLastError();
    pools_.erase(it);  // a borrowed pool that ended
  }
  // A running pool that covers the directory, refreshed; nullptr if none.
  auto covering = [&]() -> virStoragePoolPtr {
    virStoragePoolPtr* list = nullptr;
    log::Trace trace("libvirt", "virConnectListAllStoragePools", "host='{}' dir='{}'", conn_.host(),
                     dir);
    int n = virConnectListAllStoragePools(conn_.get(), &list, 0);
    if (n < 0) throw_libvirt(fmt::format("cannot list storage pools on host '{}'", conn_.host()));
    for (auto& p : take_list<Pool>(list, n)) {
      if (pool_target(p.get()) != dir) continue;
      int active = virStoragePoolIsActive(p.get());
      if (active == 0 && virStoragePoolIsPersistent(p.get()) == 1)
        throw Error(ErrorCode::kFailedPrecondition,
                    fmt::format("storage pool '{}' covers '{}' on host '{}' but is not running "
                                "(start it: virsh pool-start {})",
                                pool_name(p.get()), dir, conn_.host(), pool_name(p.get())));
      if (active != 1 || virStoragePoolRefresh(p.get(), 0) != 0) {
        virResetLastError();  // another process's transient pool, ending
        continue;
      }
      virStoragePoolPtr raw = p.get();
      pools_.emplace(dir, std::move(p));
      return raw;
    }
    return nullptr;
  };
  static std::atomic<int> counter{0};
  for (int attempt = 0;; ++attempt) {
    if (virStoragePoolPtr found = covering()) return found;
    std::string name = fmt::format("vmshift-{}-{}", ::getpid(), ++counter);
    std::string xml =
        fmt::format("<pool type='dir'><name>{}</name><target><path>{}</path></target></pool>", name,
                    xml_escape(dir));
    log::Trace trace("libvirt", "virStoragePoolCreateXML", "host='{}' pool={} type=dir target='{}'",
                     conn_.host(), name, dir);
    virStoragePoolPtr created = virStoragePoolCreateXML(conn_.get(), xml.c_str(), 0);
    if (created != nullptr) {
      virStoragePoolRef(created);
      transient_.emplace_back(created);
      pools_.emplace(dir, Pool(created));
      return created;
    }
    // Refused: most likely another process made one meanwhile; look again.
    if (attempt == 4)
      throw_libvirt(fmt::format("cannot reach directory '{}' on host '{}' (it may not exist)", dir,
                                conn_.host()));
    virResetLastError();
  }
}

Volume LibvirtStorage::volume(const std::string& path) {
  std::string dir = dirname_of(path);
  for (int attempt = 0;; ++attempt) {
    virStoragePoolPtr pool = pool_for(dir);
    log::Trace trace("libvirt", "virStorageVolLookupByName", "host='{}' path='{}'", conn_.host(),
                     path);
    virStorageVolPtr v = virStorageVolLookupByName(pool, basename_of(path).c_str());
    if (v != nullptr) return Volume(v);
    virResetLastError();
    // Not there, unless the pool was a borrowed one that ended meanwhile.
    if (virStoragePoolIsActive(pool) == 1 || attempt == 4) return Volume(nullptr);
    virResetLastError();
    pools_.erase(dir);
  }
}

bool LibvirtStorage::exists(const std::string& path) { return volume(path) != nullptr; }

std::optional<std::uint64_t> LibvirtStorage::free_bytes(const std::string& dir) {
  for (int attempt = 0;; ++attempt) {
    virStoragePoolInfo info{};
    virStoragePoolPtr pool = pool_for(dir);
    log::Trace trace("libvirt", "virStoragePoolGetInfo", "host='{}' dir='{}'", conn_.host(), dir);
    if (virStoragePoolGetInfo(pool, &info) == 0) return info.available;
    if (virStoragePoolIsActive(pool) == 1 || attempt == 4)
      throw_libvirt(
          fmt::format("cannot get the free space of '{}' on host '{}'", dir, conn_.host()));
    virResetLastError();
    pools_.erase(dir);  // a borrowed pool that ended
  }
}

void LibvirtStorage::remove(const std::string& path) {
  Volume v = volume(path);
  if (!v) return;
  log::Trace trace("libvirt", "virStorageVolDelete", "host='{}' path='{}'", conn_.host(), path);
  if (virStorageVolDelete(v.get(), 0) != 0)
    throw_libvirt(fmt::format("cannot delete '{}' on host '{}'", path, conn_.host()));
}

// libvirt shows neither real paths nor inodes, so: two directories are the
// same if a probe file made in one appears in the other; two files are the
// same if they are in the same directory under the same name, or if libvirt
// sees the same sizes and nanosecond timestamps for both (it stats through
// links, so a link shows its target's). A running guest's writes change the
// timestamps between two looks, so both are looked at in turn, several
// times: the same file shows the same fingerprint in two looks in a row as
// soon as no write falls between them; two files never do.
bool LibvirtStorage::same_file(const std::string& a, const std::string& b) {
  if (a == b) return exists(a);
  Volume va = volume(a);
  Volume vb = volume(b);
  if (!va || !vb) return false;
  if (basename_of(a) == basename_of(b) && same_dir(dirname_of(a), dirname_of(b))) return true;
  auto fingerprint = [&](Volume& v) {
    std::optional<std::string> x = take_string(virStorageVolGetXMLDesc(v.get(), 0));
    if (!x) return std::string();
    Xml xml = Xml::parse(*x);
    std::string mtime = xml.text("/volume/target/timestamps/mtime");
    std::string ctime = xml.text("/volume/target/timestamps/ctime");
    if (mtime.empty() || ctime.empty()) return std::string();
    return fmt::format("{}/{}/{}/{}", xml.text("/volume/capacity"), xml.text("/volume/allocation"),
                       mtime, ctime);
  };
  constexpr int kLooks = 40;
  std::string previous = fingerprint(va);
  if (previous.empty()) return false;
  for (int i = 0; i < kLooks; ++i) {
    std::string next = fingerprint(i % 2 == 0 ? vb : va);
    if (next.empty()) return false;
    if (next == previous) return true;
    previous = std::move(next);
  }
  return false;
}

bool LibvirtStorage::same_dir(const std::string& a, const std::string& b) {
  if (a == b) return true;
  static std::atomic<int> counter{0};
  std::string name = fmt::format(".vmshift-probe-{}-{}", ::getpid(), ++counter);
  std::string xml = fmt::format(
      "<volume><name>{}</name><capacity>0</capacity><target><format type='raw'/></target>"
      "</volume>",
      name);
  log::Trace trace("libvirt", "virStorageVolCreateXML", "host='{}' probe={} dirs='{}' '{}'",
                   conn_.host(), name, a, b);
  Volume probe(virStorageVolCreateXML(pool_for(a), xml.c_str(), 0));
  if (!probe)
    throw_libvirt(fmt::format("cannot create a probe file in '{}' on host '{}'", a, conn_.host()));
  Volume seen(virStorageVolLookupByName(pool_for(b), name.c_str()));
  if (!seen) virResetLastError();
  if (virStorageVolDelete(probe.get(), 0) != 0)
    log::warn("storage", "cannot delete the probe file {}/{} on '{}'", a, name, conn_.host());
  pool_for(a);  // refreshed: the probe is gone from the pool's list too
  return static_cast<bool>(seen);
}

std::optional<std::uint64_t> LibvirtStorage::allocation(const std::string& path) {
  Volume v = volume(path);
  if (!v) return std::nullopt;
  virStorageVolInfo info{};
  log::Trace trace("libvirt", "virStorageVolGetInfo", "host='{}' path='{}'", conn_.host(), path);
  if (virStorageVolGetInfo(v.get(), &info) != 0) return std::nullopt;
  return info.allocation;
}

// libvirt shows no inode. What stays the same while a file is written: the
// volume's key (for a dir pool, the file's path) and its birth time, which
// libvirt reports only where stat() has one (the BSDs, macOS; not Linux).
// The format would not do: libvirt probes it, and a raw volume the copy
// engine fills with a qcow2 image shows as qcow2 afterwards.
std::optional<FileIdentity> LibvirtStorage::identity(const std::string& path) {
  Volume v = volume(path);
  if (!v) return std::nullopt;
  FileIdentity id;
  id.basis = "libvirt-volume";
  const char* key = virStorageVolGetKey(v.get());
  if (key == nullptr)
    throw_libvirt(fmt::format("cannot read the key of '{}' on host '{}'", path, conn_.host()));
  id.key = key;
  std::optional<std::string> x = take_string(virStorageVolGetXMLDesc(v.get(), 0));
  if (!x) throw_libvirt(fmt::format("cannot describe '{}' on host '{}'", path, conn_.host()));
  Xml xml = Xml::parse(*x);
  std::string btime = xml.text("/volume/target/timestamps/btime");
  if (!btime.empty()) {
    // "seconds.nanoseconds"
    auto dot = btime.find('.');
    try {
      std::int64_t sec = std::stoll(btime.substr(0, dot));
      std::int64_t ns = dot == std::string::npos ? 0 : std::stoll(btime.substr(dot + 1));
      id.birth_ns = sec * 1000000000 + ns;
    } catch (const std::exception&) {
      id.birth_ns = 0;
    }
  }
  return id;
}

void LibvirtStorage::create_image(const NewImage& image) {
  const std::string& path = image.path;
  if (exists(path))
    throw Error(ErrorCode::kAlreadyExists,
                fmt::format("'{}' already exists on host '{}'", path, conn_.host()));
  // Nothing allocated: a sparse file; qcow2 gets only its metadata (libvirt
  // allocates all of a raw volume when <allocation> is left out).
  std::string backing;
  if (!image.backing.empty())
    backing = fmt::format("<backingStore><path>{}</path><format type='{}'/></backingStore>",
                          xml_escape(image.backing),
                          xml_escape(image.backing_format.empty() ? "raw" : image.backing_format));
  std::string xml = fmt::format(
      "<volume><name>{}</name><capacity unit='bytes'>{}</capacity><allocation>0</allocation>"
      "<target><format type='{}'/>"
      "</target>{}</volume>",
      xml_escape(basename_of(path)), image.capacity, xml_escape(image.format), backing);
  log::Trace trace("libvirt", "virStorageVolCreateXML",
                   "host='{}' path='{}' format={} capacity={} B backing='{}'", conn_.host(), path,
                   image.format, image.capacity, image.backing);
  Volume v(virStorageVolCreateXML(pool_for(dirname_of(path)), xml.c_str(), 0));
  if (!v)
    throw_libvirt(fmt::format("cannot create the {} image '{}' on host '{}'", image.format, path,
                              conn_.host()));
}

}  // namespace vmshift::hosts
