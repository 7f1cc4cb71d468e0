#include "migrate/created.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/error.h"

namespace vmshift::migrate {

namespace {
// " on host 'h'", or "" for the guest's own host (a live storage migration).
std::string on_host(const std::string& host) {
  return host.empty() ? "" : fmt::format(" on host '{}'", host);
}
}  // namespace

// 64-bit device and inode numbers go as strings: JSON integers are signed.
Json to_json(const hosts::FileIdentity& id) {
  return Json::object()
      .set("basis", Json::string(id.basis))
      .set("device", Json::string(std::to_string(id.device)))
      .set("inode", Json::string(std::to_string(id.inode)))
      .set("birth_ns", Json::integer(id.birth_ns))
      .set("key", Json::string(id.key));
}

hosts::FileIdentity identity_from_json(const Json& j) {
  hosts::FileIdentity id;
  id.basis = j.get_string("basis");
  id.device = std::stoull(j.get_string("device"));
  id.inode = std::stoull(j.get_string("inode"));
  id.birth_ns = j.get_int("birth_ns");
  id.key = j.get_string("key");
  return id;
}

Json to_json(const Created& c) {
  return Json::object()
      .set("host", Json::string(c.host))
      .set("path", Json::string(c.path))
      .set("identity", to_json(c.identity));
}

Created created_from_json(const Json& j) {
  return Created{j.get_string("host"), j.get_string("path"), identity_from_json(j.get("identity"))};
}

Json to_json(const std::vector<Created>& all) {
  Json a = Json::array();
  for (const auto& c : all) a.push(to_json(c));
  return a;
}

std::vector<Created> created_list_from_json(const std::optional<Json>& j) {
  std::vector<Created> out;
  if (!j || !j->is_array()) return out;
  for (const Json& c : j->items())
    // An older record listed bare paths, with no identity: those files
    // cannot be told apart from another's, and stay.
    if (c.is_object()) out.push_back(created_from_json(c));
  return out;
}

Created record_created(hosts::Storage& storage, const std::string& host, const std::string& path) {
  std::optional<hosts::FileIdentity> id = storage.identity(path);
  if (!id)
    throw Error(ErrorCode::kNotFound,
                fmt::format("'{}'{} is not there right after it was made", path, on_host(host)));
  return Created{host, path, *id};
}

bool has_created(const std::vector<Created>& all, const std::string& host,
                 const std::string& path) {
  return std::any_of(all.begin(), all.end(),
                     [&](const Created& c) { return c.host == host && c.path == path; });
}

std::optional<std::string> remove_created(hosts::Storage& storage, const Created& c) {
  try {
    if (storage.remove_if_same(c.path, c.identity)) return std::nullopt;
    return fmt::format("left '{}' in place{}: it is not the file this job created", c.path,
                       on_host(c.host));
  } catch (const Error& e) {
    return fmt::format("'{}'{} could not be removed: {}", c.path, on_host(c.host), e.what());
  }
}

void remove_all_created(hosts::Storage& storage, const std::string& host, std::vector<Created>& all,
                        std::vector<std::string>& problems) {
  std::vector<Created> kept;
  for (const auto& c : all) {
    if (c.host != host) {
      kept.push_back(c);
      continue;
    }
    try {
      if (!storage.remove_if_same(c.path, c.identity))
        // Not ours any more, and never again: the record goes.
        problems.push_back(fmt::format("left '{}' in place{}: it is not the file this job created",
                                       c.path, on_host(c.host)));
    } catch (const Error& e) {
      problems.push_back(
          fmt::format("'{}'{} could not be removed: {}", c.path, on_host(c.host), e.what()));
      kept.push_back(c);  // still ours: a later undo may remove it
    }
  }
  all = std::move(kept);
}

}  // namespace vmshift::migrate
