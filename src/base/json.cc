#include "base/json.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "base/error.h"

namespace vmshift {
namespace {

// Deep enough for any QMP message; json-c's default is 32.
constexpr int kMaxDepth = 64;

[[noreturn]] void type_error(std::string_view what, Json::Type want, Json::Type got) {
  throw Error(ErrorCode::kBadData,
              fmt::format("{}: expected {}, got {}", what, to_string(want), to_string(got)));
}

void require(const Json& j, Json::Type want, std::string_view what) {
  Json::Type got = j.type();
  if (got != want) type_error(what, want, got);
}

std::string key_what(std::string_view key) { return fmt::format("key '{}'", key); }

struct TokenerDeleter {
  void operator()(json_tokener* t) const { json_tokener_free(t); }
};

}  // namespace

std::string_view to_string(Json::Type type) noexcept {
  switch (type) {
    case Json::Type::kNull:
      return "null";
    case Json::Type::kBool:
      return "boolean";
    case Json::Type::kInt:
      return "integer";
    case Json::Type::kDouble:
      return "number";
    case Json::Type::kString:
      return "string";
    case Json::Type::kObject:
      return "object";
    case Json::Type::kArray:
      return "array";
  }
  return "?";
}

Json::Json(const Json& other) noexcept : obj_(other.obj_) {
  if (obj_ != nullptr) json_object_get(obj_);
}
Json::Json(Json&& other) noexcept : obj_(std::exchange(other.obj_, nullptr)) {}
Json& Json::operator=(const Json& other) noexcept {
  if (this != &other) {
    if (other.obj_ != nullptr) json_object_get(other.obj_);
    if (obj_ != nullptr) json_object_put(obj_);
    obj_ = other.obj_;
  }
  return *this;
}
Json& Json::operator=(Json&& other) noexcept {
  if (this != &other) {
    if (obj_ != nullptr) json_object_put(obj_);
    obj_ = std::exchange(other.obj_, nullptr);
  }
  return *this;
}
Json::~Json() {
  if (obj_ != nullptr) json_object_put(obj_);
}

Json Json::adopt(json_object* owned) noexcept { return Json(owned); }
Json Json::retain(json_object* borrowed) noexcept {
  if (borrowed != nullptr) json_object_get(borrowed);
  return Json(borrowed);
}

static Json checked_new(json_object* o) {
  if (o == nullptr) throw std::bad_alloc();
  return Json::adopt(o);
}

Json Json::object() { return checked_new(json_object_new_object()); }
Json Json::array() { return checked_new(json_object_new_array()); }
Json Json::string(std::string_view s) {
  if (s.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error(ErrorCode::kInvalidArgument, "JSON string longer than 2 GiB");
  return checked_new(json_object_new_string_len(s.data(), static_cast<int>(s.size())));
}
Json Json::integer(std::int64_t i) { return checked_new(json_object_new_int64(i)); }
Json Json::boolean(bool b) { return checked_new(json_object_new_boolean(b ? 1 : 0)); }
Json Json::number(double d) {
  if (!std::isfinite(d))
    throw Error(ErrorCode::kInvalidArgument, "JSON cannot hold NaN or infinity");
  return checked_new(json_object_new_double(d));
}

Json Json::parse(std::string_view text) {
  if (text.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error(ErrorCode::kBadData, "JSON text longer than 2 GiB");
  std::unique_ptr<json_tokener, TokenerDeleter> tok(json_tokener_new_ex(kMaxDepth));
  if (!tok) throw std::bad_alloc();
  json_tokener_set_flags(tok.get(), JSON_TOKENER_STRICT);
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
    throw Error(ErrorCode::kBadData, "malformed JSON: empty input");
  const int len = static_cast<int>(text.size());
  json_object* obj = json_tokener_parse_ex(tok.get(), text.data(), len);
  json_tokener_error err = json_tokener_get_error(tok.get());
  std::size_t end = json_tokener_get_parse_end(tok.get());
  if (err == json_tokener_continue) {
    // The text ended inside a value, or at the end of one json-c cannot see
    // as complete yet (a bare number): a terminating NUL byte tells which.
    obj = json_tokener_parse_ex(tok.get(), "", 1);
    err = json_tokener_get_error(tok.get());
    if (err != json_tokener_success) {
      json_object_put(obj);
      throw Error(ErrorCode::kBadData,
                  fmt::format("malformed JSON: text ends inside a value ({} bytes)", text.size()));
    }
    end = text.size();
  } else if (err != json_tokener_success) {
    throw Error(ErrorCode::kBadData,
                fmt::format("malformed JSON at byte {}: {}", end, json_tokener_error_desc(err)));
  }
  Json result = Json::adopt(obj);
  for (std::size_t i = end; i < text.size(); ++i) {
    char c = text[i];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
      throw Error(ErrorCode::kBadData,
                  fmt::format("malformed JSON: unexpected data after the value at byte {}", i));
  }
  return result;
}

Json::Type Json::type() const noexcept {
  switch (json_object_get_type(obj_)) {
    case json_type_null:
      return Type::kNull;
    case json_type_boolean:
      return Type::kBool;
    case json_type_int:
      return Type::kInt;
    case json_type_double:
      return Type::kDouble;
    case json_type_string:
      return Type::kString;
    case json_type_object:
      return Type::kObject;
    case json_type_array:
      return Type::kArray;
  }
  return Type::kNull;
}

Json& Json::set(std::string_view key, Json value) & {
  require(*this, Type::kObject, fmt::format("setting {}", key_what(key)));
  std::string k(key);
  // json_object_object_add steals the reference held by value.
  if (json_object_object_add(obj_, k.c_str(), value.obj_) != 0) throw std::bad_alloc();
  value.obj_ = nullptr;
  return *this;
}
Json&& Json::set(std::string_view key, Json value) && {
  set(key, std::move(value));
  return std::move(*this);
}

std::optional<Json> Json::find(std::string_view key) const {
  require(*this, Type::kObject, fmt::format("looking up {}", key_what(key)));
  std::string k(key);
  json_object* child = nullptr;
  if (!json_object_object_get_ex(obj_, k.c_str(), &child)) return std::nullopt;
  return Json::retain(child);  // get_ex borrows
}

bool Json::has(std::string_view key) const { return find(key).has_value(); }

Json Json::get(std::string_view key) const {
  auto v = find(key);
  if (!v) throw Error(ErrorCode::kBadData, fmt::format("missing {}", key_what(key)));
  return *v;
}

std::string Json::get_string(std::string_view key) const {
  Json v = get(key);
  require(v, Type::kString, key_what(key));
  return v.as_string();
}
std::int64_t Json::get_int(std::string_view key) const {
  Json v = get(key);
  require(v, Type::kInt, key_what(key));
  return v.as_int();
}
bool Json::get_bool(std::string_view key) const {
  Json v = get(key);
  require(v, Type::kBool, key_what(key));
  return v.as_bool();
}
double Json::get_number(std::string_view key) const {
  Json v = get(key);
  if (v.type() != Type::kInt && v.type() != Type::kDouble)
    type_error(key_what(key), Type::kDouble, v.type());
  return v.as_number();
}
std::optional<std::string> Json::find_string(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_string(key);
}
std::optional<std::int64_t> Json::find_int(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_int(key);
}
std::optional<bool> Json::find_bool(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_bool(key);
}

std::vector<std::string> Json::keys() const {
  require(*this, Type::kObject, "listing keys");
  std::vector<std::string> out;
  json_object_object_foreach(obj_, k, v) {
    (void)v;
    out.emplace_back(k);
  }
  return out;
}

Json& Json::push(Json value) & {
  require(*this, Type::kArray, "appending to an array");
  if (json_object_array_add(obj_, value.obj_) != 0) throw std::bad_alloc();
  value.obj_ = nullptr;
  return *this;
}
Json&& Json::push(Json value) && {
  push(std::move(value));
  return std::move(*this);
}

std::size_t Json::size() const {
  if (type() == Type::kArray) return json_object_array_length(obj_);
  if (type() == Type::kObject) return static_cast<std::size_t>(json_object_object_length(obj_));
  type_error("taking the size", Type::kArray, type());
}

Json Json::at(std::size_t index) const {
  require(*this, Type::kArray, fmt::format("reading element {}", index));
  std::size_t n = json_object_array_length(obj_);
  if (index >= n)
    throw Error(ErrorCode::kBadData,
                fmt::format("element {} is out of range (array has {})", index, n));
  return Json::retain(json_object_array_get_idx(obj_, index));
}

std::vector<Json> Json::items() const {
  require(*this, Type::kArray, "reading the elements");
  std::size_t n = json_object_array_length(obj_);
  std::vector<Json> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(Json::retain(json_object_array_get_idx(obj_, i)));
  return out;
}

std::string Json::as_string() const {
  require(*this, Type::kString, "value");
  return std::string(json_object_get_string(obj_),
                     static_cast<std::size_t>(json_object_get_string_len(obj_)));
}
std::int64_t Json::as_int() const {
  require(*this, Type::kInt, "value");
  return json_object_get_int64(obj_);
}
bool Json::as_bool() const {
  require(*this, Type::kBool, "value");
  return json_object_get_boolean(obj_) != 0;
}
double Json::as_number() const {
  if (type() == Type::kInt) return static_cast<double>(json_object_get_int64(obj_));
  require(*this, Type::kDouble, "value");
  return json_object_get_double(obj_);
}

std::string Json::dump() const {
  if (obj_ == nullptr) return "null";
  size_t len = 0;
  const char* s = json_object_to_json_string_length(
      obj_, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  return std::string(s, len);
}

Json Json::clone() const {
  if (obj_ == nullptr) return Json();
  json_object* copy = nullptr;
  if (json_object_deep_copy(obj_, &copy, nullptr) != 0) throw std::bad_alloc();
  return Json::adopt(copy);
}

bool Json::operator==(const Json& other) const { return json_object_equal(obj_, other.obj_) != 0; }

json_object* Json::release() noexcept { return std::exchange(obj_, nullptr); }

}  // namespace vmshift
