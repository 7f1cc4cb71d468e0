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

void CreatedList::decode(const Json& j, std::vector<Created>& all, const std::string& path) {
  all.clear();
  if (!j.is_array()) return;
  std::vector<Json> items = j.items();
  for (std::size_t i = 0; i < items.size(); ++i)
    if (items[i].is_object())
      codec::decode_at(items[i], all.emplace_back(), codec::index_path(path, i));
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
