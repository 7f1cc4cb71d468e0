#include "base/codec.h"

#include <fmt/format.h>

#include <charconv>

#include "base/error.h"

namespace vmshift::codec {

std::string key_path(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return fmt::format("{}.{}", path, key);
}

std::string index_path(const std::string& path, std::size_t index) {
  return fmt::format("{}[{}]", path, index);
}

void fail(const std::string& path, std::string_view what) {
  throw Error(ErrorCode::kBadData,
              path.empty() ? std::string(what) : fmt::format("{}: {}", path, what));
}

void expect(const Json& v, Json::Type type, const std::string& path) {
  if (v.type() != type)
    fail(path, fmt::format("expected {}, got {}", to_string(type), to_string(v.type())));
}

Json Pairs::encode(const std::vector<std::pair<std::string, std::string>>& v) const {
  Json a = Json::array();
  for (const auto& [x, y] : v)
    a.push(Json::object().set(first, Json::string(x)).set(second, Json::string(y)));
  return a;
}

void Pairs::decode(const Json& j, std::vector<std::pair<std::string, std::string>>& v,
                   const std::string& path) const {
  expect(j, Json::Type::kArray, path);
  v.clear();
  std::vector<Json> items = j.items();
  for (std::size_t i = 0; i < items.size(); ++i) {
    std::string at = index_path(path, i);
    expect(items[i], Json::Type::kObject, at);
    auto& [x, y] = v.emplace_back();
    for (auto [key, out] : {std::pair{first, &x}, std::pair{second, &y}}) {
      std::optional<Json> s = items[i].find(key);
      if (!s) fail(key_path(at, key), "missing");
      Codec<std::string>::decode(*s, *out, key_path(at, key));
    }
  }
}

Json DecimalString::encode(std::uint64_t v) { return Json::string(std::to_string(v)); }

void DecimalString::decode(const Json& j, std::uint64_t& v, const std::string& path) {
  expect(j, Json::Type::kString, path);
  std::string s = j.as_string();
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    fail(path, fmt::format("expected a decimal number, got '{}'", s));
}

}  // namespace vmshift::codec
