#include "qmp/line_reader.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace vmshift::qmp {
namespace {

std::vector<std::string> drain(LineReader& r) {
  std::vector<std::string> out;
  while (auto l = r.next()) out.push_back(*l);
  return out;
}

// Test that a message split into 1-byte pieces comes out whole, once.
TEST(LineReader, ReassemblesOneBytePieces) {
  LineReader r;
  std::string msg = R"({"return": {}, "id": "vmshift-1"})";
  for (char c : msg) {
    r.feed(std::string_view(&c, 1));
    EXPECT_FALSE(r.next());
  }
  r.feed("\r");
  EXPECT_FALSE(r.next());
  r.feed("\n");
  EXPECT_EQ(r.next(), msg);
  EXPECT_FALSE(r.next());
  EXPECT_EQ(r.pending_bytes(), 0u);
}

// Test that several messages in one read come out in order, blank lines skipped.
TEST(LineReader, SplitsSeveralMessagesInOneRead) {
  LineReader r;
  r.feed("{\"a\":1}\r\n\r\n{\"b\":2}\n{\"c\":");
  EXPECT_EQ(drain(r), (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  EXPECT_EQ(r.pending_bytes(), 5u);
  r.feed("3}\r\n");
  EXPECT_EQ(drain(r), (std::vector<std::string>{"{\"c\":3}"}));
}

// Test that a message much larger than any read buffer is returned intact.
TEST(LineReader, HandlesMessagesLargerThanABuffer) {
  LineReader r;
  std::string big = "\"" + std::string(5u << 20, 'x') + "\"";
  for (std::size_t off = 0; off < big.size(); off += 65536)
    r.feed(std::string_view(big).substr(off, 65536));
  r.feed("\n");
  auto line = r.next();
  ASSERT_TRUE(line);
  EXPECT_EQ(line->size(), big.size());
  EXPECT_EQ(*line, big);
}

// Test that a line growing past the limit is a protocol error, not unbounded memory.
TEST(LineReader, RefusesLinesOverTheLimit) {
  LineReader r(16);
  r.feed("0123456789");
  EXPECT_FALSE(r.next());
  r.feed("0123456789");
  try {
    r.next();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kProtocol);
    EXPECT_STREQ(e.what(), "QMP message is larger than 16 bytes without a line end");
  }
  LineReader complete(4);
  complete.feed("abcdefgh\n");  // a complete line over the limit
  EXPECT_THROW(complete.next(), Error);
}

// Test that a line of exactly the limit is accepted even when a read ends
// between its '\r' and '\n'.
TEST(LineReader, LineOfExactlyTheLimitSplitBetweenCrAndLf) {
  LineReader r(8);
  r.feed("12345678\r");
  EXPECT_FALSE(r.next());
  r.feed("\n");
  EXPECT_EQ(r.next(), "12345678");
}

// Test that complete lines arriving with an over-long tail are returned
// before the tail is refused.
TEST(LineReader, CompleteLinesBeforeAnOverlongTailComeFirst) {
  LineReader r(8);
  r.feed("ok\n" + std::string(20, 'x'));
  EXPECT_EQ(r.next(), "ok");
  EXPECT_THROW(r.next(), Error);
}

// Test that the limit applies per line, not to the buffer holding many lines.
TEST(LineReader, LimitIsPerLine) {
  LineReader r(8);
  std::string many;
  for (int i = 0; i < 100; ++i) many += "1234567\n";
  r.feed(many);
  EXPECT_EQ(drain(r).size(), 100u);
}

}  // namespace
}  // namespace vmshift::qmp
