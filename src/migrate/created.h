// Which files a job made, so that its undo and cleanup delete those and
// nothing else. A file is the job's to delete only if the job created it
// (recorded after the call that made it succeeded, where nothing was
// before), and the file at that path still has the identity it had then
// (hosts::FileIdentity: device, inode, birth time; libvirt: weaker). A
// file that differs is left in place and the job says so.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/codec.h"
#include "base/json.h"
#include "guest/guest.h"

namespace vmshift::migrate {

struct Created {
  std::string host;  // the host whose storage holds it
  std::string path;
  hosts::FileIdentity identity;
};

// A job's list of created files in its saved state, for
// field("created", &State::created, created_list).or_default(): a value
// that is not an array reads as an empty list, an element that is not an
// object is skipped (an older record listed bare paths, with no identity:
// those files cannot be told apart from another's, and stay).
struct CreatedList {
  static Json encode(const std::vector<Created>& all) { return codec::encode(all); }
  static void decode(const Json& j, std::vector<Created>& all, const std::string& path);
};
inline constexpr CreatedList created_list{};

// The record of a file the job just made at path. Throws Error(kNotFound)
// if there is no file there.
Created record_created(hosts::Storage& storage, const std::string& host, const std::string& path);

// Whether the list has a record of host:path.
bool has_created(const std::vector<Created>& all, const std::string& host, const std::string& path);

// Deletes a file the job created, if the file at its path is still that
// one. Returns a problem as a sentence, or nullopt when the file was
// removed (or was gone already).
std::optional<std::string> remove_created(hosts::Storage& storage, const Created& c);

// remove_created for every record of `host` in the list, problems appended
// to `problems`; the records of the files removed (or gone) leave the list.
void remove_all_created(hosts::Storage& storage, const std::string& host, std::vector<Created>& all,
                        std::vector<std::string>& problems);

}  // namespace vmshift::migrate

// 64-bit device and inode numbers go as strings: JSON integers are signed.
template <>
struct vmshift::codec::Fields<vmshift::hosts::FileIdentity> {
  using T = hosts::FileIdentity;
  static constexpr auto list =
      std::tuple{field("basis", &T::basis), field("device", &T::device, decimal_string),
                 field("inode", &T::inode, decimal_string), field("birth_ns", &T::birth_ns),
                 field("key", &T::key)};
};

template <>
struct vmshift::codec::Fields<vmshift::migrate::Created> {
  using T = migrate::Created;
  static constexpr auto list =
      std::tuple{field("host", &T::host), field("path", &T::path), field("identity", &T::identity)};
};
