// A JSON value backed by json-c, with ownership made explicit.
//
// A Json always owns one reference to its json_object (or is JSON null, which
// json-c represents as a null pointer). Where a raw json_object* enters from
// C code, the factory says what happens to the reference:
//
//   Json::adopt(p)   takes over a reference the caller owned (e.g. the result
//                    of json_tokener_parse or json_object_new_*);
//   Json::retain(p)  takes a new reference to a borrowed pointer (e.g. the
//                    result of json_object_object_get_ex or array_get_idx).
//
// Copies share the same value (like a shared_ptr); use clone() for a deep
// copy before changing a value that others hold. Unlike a shared_ptr, a
// value must not be used from two threads at once, not even for reading:
// json-c's reference count is not atomic, and reading a child takes a
// reference. Hand values between threads under a lock, as qmp::Client does. Reading a key or
// element that is missing or of the wrong JSON type throws Error(kBadData) with a message naming
// the key and both types.
#pragma once

#include <json-c/json.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmshift {

class Json {
 public:
  enum class Type { kNull, kBool, kInt, kDouble, kString, kObject, kArray };

  Json() noexcept = default;  // JSON null
  Json(const Json& other) noexcept;
  Json(Json&& other) noexcept;
  Json& operator=(const Json& other) noexcept;
  Json& operator=(Json&& other) noexcept;
  ~Json();

  static Json adopt(json_object* owned) noexcept;
  static Json retain(json_object* borrowed) noexcept;

  static Json object();
  static Json array();
  static Json string(std::string_view s);
  static Json integer(std::int64_t i);
  static Json boolean(bool b);
  static Json number(double d);
  static Json null() noexcept { return Json(); }

  // Parses one JSON document; anything but whitespace after it is an error.
  static Json parse(std::string_view text);

  Type type() const noexcept;
  bool is_null() const noexcept { return type() == Type::kNull; }
  bool is_object() const noexcept { return type() == Type::kObject; }
  bool is_array() const noexcept { return type() == Type::kArray; }
  bool is_string() const noexcept { return type() == Type::kString; }
  bool is_int() const noexcept { return type() == Type::kInt; }
  bool is_bool() const noexcept { return type() == Type::kBool; }

  // Objects. set() replaces an existing key.
  Json& set(std::string_view key, Json value) &;
  Json&& set(std::string_view key, Json value) &&;
  bool has(std::string_view key) const;
  std::optional<Json> find(std::string_view key) const;
  Json get(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::int64_t get_int(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  double get_number(std::string_view key) const;
  std::optional<std::string> find_string(std::string_view key) const;
  std::optional<std::int64_t> find_int(std::string_view key) const;
  std::optional<bool> find_bool(std::string_view key) const;
  std::vector<std::string> keys() const;

  // Arrays.
  Json& push(Json value) &;
  Json&& push(Json value) &&;
  std::size_t size() const;  // elements of an array or keys of an object
  Json at(std::size_t index) const;
  std::vector<Json> items() const;

  // Scalars. as_number() accepts integers too.
  std::string as_string() const;
  std::int64_t as_int() const;
  bool as_bool() const;
  double as_number() const;

  // Compact serialization (no newlines, so it can be sent as one QMP line).
  std::string dump() const;
  Json clone() const;

  // Deep equality (object key order does not matter).
  bool operator==(const Json& other) const;

  json_object* get() const noexcept { return obj_; }  // borrowed
  json_object* release() noexcept;                    // caller now owns the reference

 private:
  explicit Json(json_object* owned) noexcept : obj_(owned) {}
  json_object* obj_ = nullptr;
};

std::string_view to_string(Json::Type type) noexcept;

}  // namespace vmshift
