#include "base/json.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace vmshift::qmp {
namespace {

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Test that objects and arrays built in code serialize compactly and in insertion order.
TEST(Json, BuildsObjectsAndArrays) {
  Json j = Json::object()
               .set("execute", Json::string("blockdev-add"))
               .set("n", Json::integer(-5))
               .set("flag", Json::boolean(true))
               .set("list", Json::array().push(Json::integer(1)).push(Json::null()));
  EXPECT_EQ(j.dump(), R"({"execute":"blockdev-add","n":-5,"flag":true,"list":[1,null]})");
  EXPECT_EQ(j.size(), 4u);
  EXPECT_EQ(j.keys(), (std::vector<std::string>{"execute", "n", "flag", "list"}));
}

// Test that typed getters return values of the right type.
TEST(Json, TypedGetters) {
  Json j = Json::parse(R"({"s":"x","i":9007199254740993,"b":false,"d":1.5,"o":{"k":[1,2]}})");
  EXPECT_EQ(j.get_string("s"), "x");
  EXPECT_EQ(j.get_int("i"), 9007199254740993LL);
  EXPECT_FALSE(j.get_bool("b"));
  EXPECT_DOUBLE_EQ(j.get_number("d"), 1.5);
  EXPECT_DOUBLE_EQ(j.get_number("i"), 9007199254740993.0);
  EXPECT_EQ(j.get("o").get("k").at(1).as_int(), 2);
  EXPECT_EQ(j.find_string("missing"), std::nullopt);
  EXPECT_EQ(j.find_int("i"), 9007199254740993LL);
}

// Test that a missing key fails with a message naming the key.
TEST(Json, MissingKeyNamesTheKey) {
  Json j = Json::parse(R"({"a":1})");
  EXPECT_EQ(code_of([&] { j.get("status"); }), ErrorCode::kBadData);
  EXPECT_EQ(message_of([&] { j.get_string("status"); }), "missing key 'status'");
}

// Test that a value of the wrong JSON type fails with both types named.
TEST(Json, WrongTypeNamesBothTypes) {
  Json j = Json::parse(R"({"running":"yes","n":1.5})");
  EXPECT_EQ(message_of([&] { j.get_bool("running"); }),
            "key 'running': expected boolean, got string");
  EXPECT_EQ(message_of([&] { j.get_int("n"); }), "key 'n': expected integer, got number");
  EXPECT_EQ(message_of([&] { Json::parse("[1]").get("x"); }),
            "looking up key 'x': expected object, got array");
  EXPECT_EQ(code_of([&] { Json::parse("[1]").at(3); }), ErrorCode::kBadData);
}

// Test that copies share one value and clone() makes an independent one.
TEST(Json, CopiesShareAndCloneDoesNot) {
  Json a = Json::object();
  Json b = a;
  b.set("k", Json::integer(1));
  EXPECT_TRUE(a.has("k"));
  Json c = a.clone();
  c.set("k2", Json::integer(2));
  EXPECT_FALSE(a.has("k2"));
}

// Test that adopt() takes over a reference and retain() adds one.
TEST(Json, AdoptAndRetainManageReferences) {
  json_object* raw = json_object_new_object();
  {
    Json borrowed = Json::retain(raw);  // refcount 2
    EXPECT_EQ(borrowed.get(), raw);
  }                               // back to 1
  Json owned = Json::adopt(raw);  // owns the last reference: freed at scope end
  owned.set("x", Json::integer(1));
  EXPECT_EQ(owned.dump(), R"({"x":1})");
  json_object* released = owned.release();
  EXPECT_TRUE(owned.is_null());
  json_object_put(released);
}

// Test that parse accepts scalars and surrounding whitespace.
TEST(Json, ParsesScalars) {
  EXPECT_EQ(Json::parse("42").as_int(), 42);
  EXPECT_EQ(Json::parse(" 42 \r\n").as_int(), 42);
  EXPECT_TRUE(Json::parse("null").is_null());
  EXPECT_EQ(Json::parse(R"("a\nb")").as_string(), "a\nb");
  EXPECT_EQ(Json::parse(R"("\u00e9")").as_string(), "\xc3\xa9");
}

// Test that malformed input is refused with a clear error and no crash.
TEST(Json, RefusesMalformedInput) {
  for (const char* bad : {"", "   ", "{", "{\"a\":}", "[1,2", "{}x", "{} {}", "nul", "'x'",
                          "{\"a\":1,}", "\"unterminated"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(code_of([&] { Json::parse(bad); }), ErrorCode::kBadData);
  }
  EXPECT_EQ(message_of([&] { Json::parse("{}x"); }),
            "malformed JSON at byte 2: unexpected character");
}

// Test that nesting deeper than the limit is refused rather than overflowing.
TEST(Json, RefusesDeepNesting) {
  std::string deep(1000, '[');
  deep += std::string(1000, ']');
  EXPECT_EQ(code_of([&] { Json::parse(deep); }), ErrorCode::kBadData);
}

// Test that equality is deep and ignores key order.
TEST(Json, DeepEquality) {
  EXPECT_EQ(Json::parse(R"({"a":1,"b":[true]})"), Json::parse(R"({"b":[true],"a":1})"));
  EXPECT_FALSE(Json::parse(R"({"a":1})") == Json::parse(R"({"a":2})"));
  EXPECT_EQ(Json(), Json::null());
}

// Test that NaN cannot be put in JSON.
TEST(Json, RefusesNonFiniteNumbers) {
  EXPECT_EQ(code_of([] { Json::number(std::numeric_limits<double>::quiet_NaN()); }),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmshift::qmp
