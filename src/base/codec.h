// Saving a struct as JSON: one field list per struct, used both ways.
//
//   template <>
//   struct vmshift::codec::Fields<migrate::Created> {
//     using T = migrate::Created;
//     static constexpr auto list = std::tuple{
//         field("host", &T::host), field("path", &T::path), field("identity", &T::identity)};
//   };
//
// (An explicit specialization is declared outside the struct's namespace,
// right after the struct.) Then
//
//   Json j = codec::encode(c);                      // {"host": ..., "path": ..., ...}
//   Created c = codec::decode<Created>(j, "created");
//
// decode() throws Error(kBadData) naming where in the document the problem
// is and what it is: "options.disks[1].path: missing", "plan.memory_bytes:
// expected integer, got string".
//
// The value types a field may have, and how they are written:
//
//   std::string, bool                 JSON string, boolean
//   integers (int, int64, uint64)     JSON integer (a uint64 goes as int64)
//   double                            JSON number (an integer reads too)
//   std::chrono::duration             JSON integer: the count (milliseconds{250} -> 250)
//   std::optional<T>                  T, or no key at all; an absent or null key reads as nullopt
//   std::vector<T>                    array
//   std::map<std::string, T>          object
//   a struct with Fields<T>           object
//   an enum with Names<E>             JSON string: Names<E>::name(e); Names<E>::find(s) reads it
//   Json                              as it is
//
// What a field list may say besides field(name, &T::member):
//
//   field(...).or_default()       an absent (or null) key leaves the member at the struct's
//                                 default: for keys that documents of older versions lack
//   field(...).null_if_unset()    an optional member that is nullopt is written as null
//   field(name, &T::m, pairs("target", "path"))   a vector<pair<string, string>> as an array
//                                 of objects {"target": first, "path": second}
//   field(name, &T::m, decimal_string)             a uint64 as a string of decimal digits
//   field(name, &T::m, SomeCodec{})                any type with encode(const M&) -> Json and
//                                                  decode(const Json&, M&, const std::string& path)
//   custom(encode_fn, decode_fn)  the rare irregular case: functions of the whole struct and
//                                 the whole object, e.g. a member spread over two keys
//
// A key of the document that no field names is ignored when reading.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/json.h"

namespace vmshift::codec {

// Specialize with `static constexpr auto list = std::tuple{field(...), ...};`.
template <typename T>
struct Fields;

// Specialize for an enum E with
//   static std::string_view name(E);
//   static std::optional<E> find(std::string_view);
template <typename E>
struct Names;

template <typename T>
struct Codec;  // how a value of type T is written and read; specialized below

// ---- paths and errors: for a custom codec (a field list needs none of these)

// "plan" + "copies" -> "plan.copies"; "" + "copies" -> "copies".
std::string key_path(const std::string& path, std::string_view key);
// "plan.copies" + 1 -> "plan.copies[1]".
std::string index_path(const std::string& path, std::size_t index);

// Throws Error(kBadData, "<path>: <what>").
[[noreturn]] void fail(const std::string& path, std::string_view what);
// Throws unless v has the type: "<path>: expected integer, got string".
void expect(const Json& v, Json::Type type, const std::string& path);

// ---- encode, decode

template <typename T>
Json encode(const T& value) {
  return Codec<T>::encode(value);
}

// Reads a document; `what` names it in errors ("plan", "saved state").
template <typename T>
T decode(const Json& json, std::string_view what) {
  T value{};
  Codec<T>::decode(json, value, std::string(what));
  return value;
}

// For a custom decoder: reads the value of object's key (at path) into value;
// throws "<path>.<key>: missing" when there is none.
template <typename T>
void decode_key(const Json& object, std::string_view key, T& value, const std::string& path) {
  std::optional<Json> v = object.find(key);
  if (!v) fail(key_path(path, key), "missing");
  Codec<T>::decode(*v, value, key_path(path, key));
}
// Reads json (found at path) into value.
template <typename T>
void decode_at(const Json& json, T& value, const std::string& path) {
  Codec<T>::decode(json, value, path);
}

// Saved state is text in the job store.
template <typename T>
std::string dump(const T& value) {
  return encode(value).dump();
}
template <typename T>
T parse(std::string_view text, std::string_view what) {
  return decode<T>(Json::parse(text), what);
}

// ---- fields

template <typename T>
inline constexpr bool kIsOptional = false;
template <typename T>
inline constexpr bool kIsOptional<std::optional<T>> = true;

template <typename T, typename M, typename Via = Codec<M>>
struct Field {
  std::string_view name;
  M T::*member;
  Via via{};
  bool default_if_absent = false;
  bool write_null = false;

  constexpr Field or_default() const {
    Field f = *this;
    f.default_if_absent = true;
    return f;
  }
  constexpr Field null_if_unset() const {
    static_assert(kIsOptional<M>, "null_if_unset() is for an optional member");
    Field f = *this;
    f.write_null = true;
    return f;
  }

  void encode(const T& t, Json& out) const {
    const M& v = t.*member;
    if constexpr (kIsOptional<M>)
      if (!v) {
        if (write_null) out.set(name, Json::null());
        return;
      }
    out.set(name, via.encode(v));
  }
  void decode(const Json& in, T& t, const std::string& path) const {
    // An optional member, or one with a default, may be absent or null.
    const bool may_lack = default_if_absent || kIsOptional<M>;
    std::optional<Json> v = in.find(name);
    if (may_lack && (!v || v->is_null())) return;
    if (!v) fail(key_path(path, name), "missing");
    via.decode(*v, t.*member, key_path(path, name));
  }
};

template <typename T, typename M>
constexpr Field<T, M> field(std::string_view name, M T::*member) {
  return {name, member};
}
template <typename T, typename M, typename Via>
constexpr Field<T, M, Via> field(std::string_view name, M T::*member, Via via) {
  return {name, member, via};
}

// A field written and read by functions of the whole struct and object.
template <typename T>
struct Custom {
  void (*write)(const T& t, Json& object);
  void (*read)(const Json& object, T& t, const std::string& path);
  void encode(const T& t, Json& out) const { write(t, out); }
  void decode(const Json& in, T& t, const std::string& path) const { read(in, t, path); }
};
template <typename T>
constexpr Custom<T> custom(void (*write)(const T&, Json&),
                           void (*read)(const Json&, T&, const std::string&)) {
  return {write, read};
}

template <typename T>
concept HasFields = requires {
  Fields<T>::list;
};

template <HasFields T>
struct Codec<T> {
  static Json encode(const T& t) {
    Json out = Json::object();
    std::apply([&](const auto&... f) { (f.encode(t, out), ...); }, Fields<T>::list);
    return out;
  }
  static void decode(const Json& in, T& t, const std::string& path) {
    expect(in, Json::Type::kObject, path);
    std::apply([&](const auto&... f) { (f.decode(in, t, path), ...); }, Fields<T>::list);
  }
};

// ---- value types

// A JSON value kept as it is.
template <>
struct Codec<Json> {
  static Json encode(const Json& v) { return v; }
  static void decode(const Json& j, Json& v, const std::string&) { v = j; }
};

template <>
struct Codec<std::string> {
  static Json encode(const std::string& v) { return Json::string(v); }
  static void decode(const Json& j, std::string& v, const std::string& path) {
    expect(j, Json::Type::kString, path);
    v = j.as_string();
  }
};

template <>
struct Codec<bool> {
  static Json encode(bool v) { return Json::boolean(v); }
  static void decode(const Json& j, bool& v, const std::string& path) {
    expect(j, Json::Type::kBool, path);
    v = j.as_bool();
  }
};

template <std::integral T>
struct Codec<T> {
  static Json encode(T v) { return Json::integer(static_cast<std::int64_t>(v)); }
  static void decode(const Json& j, T& v, const std::string& path) {
    expect(j, Json::Type::kInt, path);
    std::int64_t i = j.as_int();
    if constexpr (sizeof(T) < sizeof(std::int64_t))
      if (i < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
          i > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
        fail(path, "out of range");
    v = static_cast<T>(i);  // a uint64 above INT64_MAX went as a negative int64
  }
};

template <std::floating_point T>
struct Codec<T> {
  static Json encode(T v) { return Json::number(static_cast<double>(v)); }
  static void decode(const Json& j, T& v, const std::string& path) {
    if (!j.is_int()) expect(j, Json::Type::kDouble, path);
    v = static_cast<T>(j.as_number());
  }
};

template <typename Rep, typename Period>
struct Codec<std::chrono::duration<Rep, Period>> {
  using D = std::chrono::duration<Rep, Period>;
  static Json encode(D v) { return Json::integer(static_cast<std::int64_t>(v.count())); }
  static void decode(const Json& j, D& v, const std::string& path) {
    expect(j, Json::Type::kInt, path);
    v = D(static_cast<Rep>(j.as_int()));
  }
};

template <typename T>
struct Codec<std::optional<T>> {
  static Json encode(const std::optional<T>& v) { return v ? Codec<T>::encode(*v) : Json::null(); }
  static void decode(const Json& j, std::optional<T>& v, const std::string& path) {
    if (j.is_null()) {
      v.reset();
      return;
    }
    v.emplace();
    Codec<T>::decode(j, *v, path);
  }
};

template <typename T>
struct Codec<std::vector<T>> {
  static Json encode(const std::vector<T>& v) {
    Json a = Json::array();
    for (const auto& x : v) a.push(Codec<T>::encode(x));
    return a;
  }
  static void decode(const Json& j, std::vector<T>& v, const std::string& path) {
    expect(j, Json::Type::kArray, path);
    std::vector<Json> items = j.items();
    v.clear();
    v.resize(items.size());
    for (std::size_t i = 0; i < items.size(); ++i)
      Codec<T>::decode(items[i], v[i], index_path(path, i));
  }
};

template <typename T>
struct Codec<std::map<std::string, T>> {
  static Json encode(const std::map<std::string, T>& v) {
    Json o = Json::object();
    for (const auto& [k, x] : v) o.set(k, Codec<T>::encode(x));
    return o;
  }
  static void decode(const Json& j, std::map<std::string, T>& v, const std::string& path) {
    expect(j, Json::Type::kObject, path);
    v.clear();
    for (const auto& k : j.keys()) Codec<T>::decode(j.get(k), v[k], key_path(path, k));
  }
};

template <typename E>
requires std::is_enum_v<E> && requires(E e, std::string_view s) {
  { Names<E>::name(e) } -> std::convertible_to<std::string_view>;
  { Names<E>::find(s) } -> std::same_as<std::optional<E>>;
}
struct Codec<E> {
  static Json encode(E v) { return Json::string(Names<E>::name(v)); }
  static void decode(const Json& j, E& v, const std::string& path) {
    expect(j, Json::Type::kString, path);
    std::optional<E> e = Names<E>::find(j.as_string());
    if (!e) fail(path, "unknown name '" + j.as_string() + "'");
    v = *e;
  }
};

// ---- codecs a field names

// A vector of string pairs as an array of two-key objects.
struct Pairs {
  std::string_view first, second;
  Json encode(const std::vector<std::pair<std::string, std::string>>& v) const;
  void decode(const Json& j, std::vector<std::pair<std::string, std::string>>& v,
              const std::string& path) const;
};
constexpr Pairs pairs(std::string_view first, std::string_view second) { return {first, second}; }

// A uint64 as a string of decimal digits (JSON integers are signed).
struct DecimalString {
  static Json encode(std::uint64_t v);
  static void decode(const Json& j, std::uint64_t& v, const std::string& path);
};
inline constexpr DecimalString decimal_string{};

}  // namespace vmshift::codec
