#include "ledger/ledger.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <sstream>

#include "base/error.h"
#include "ledger/verify.h"

namespace vmshift::ledger {
namespace {

using ::testing::HasSubstr;

std::vector<unsigned char> block_of(const Record& r) {
  std::vector<unsigned char> b(kBlockSize);
  encode(r, std::span<unsigned char, kBlockSize>(b.data(), kBlockSize));
  return b;
}

Decoded decode_vec(const std::vector<unsigned char>& b) {
  return decode(std::span<const unsigned char, kBlockSize>(b.data(), kBlockSize));
}

// Test the CRC32C against its published check value.
TEST(Ledger, Crc32cCheckValue) {
  const char* text = "123456789";
  EXPECT_EQ(crc32c(reinterpret_cast<const unsigned char*>(text), 9), 0xe3069283u);
}

// Test that a record decodes to what was encoded, at the documented offsets.
TEST(Ledger, RecordRoundTrip) {
  auto b = block_of({.disk_id = 3, .block = 77, .seq = 123456789});
  EXPECT_EQ(std::memcmp(b.data(), "VMSHLEDG", 8), 0);
  EXPECT_EQ(b[kOffDisk], 3);
  Decoded d = decode_vec(b);
  ASSERT_EQ(d.state, BlockState::kValid);
  EXPECT_EQ(d.record.disk_id, 3u);
  EXPECT_EQ(d.record.block, 77u);
  EXPECT_EQ(d.record.seq, 123456789u);
}

// Test that zeros are "never written" and any damaged byte is caught.
TEST(Ledger, DetectsDamage) {
  std::vector<unsigned char> zero(kBlockSize, 0);
  EXPECT_EQ(decode_vec(zero).state, BlockState::kEmpty);
  auto good = block_of({.disk_id = 0, .block = 1, .seq = 2});
  for (std::size_t off : {std::size_t{0}, kOffSeq, kOffFill + 1000, kOffCrc}) {
    auto bad = good;
    bad[off] ^= 0x10;
    EXPECT_EQ(decode_vec(bad).state, BlockState::kCorrupt) << "flipped byte " << off;
  }
  // A torn write: the first half of a newer record over an older one.
  auto older = block_of({.disk_id = 0, .block = 1, .seq = 2});
  auto newer = block_of({.disk_id = 0, .block = 1, .seq = 1026});
  std::memcpy(older.data(), newer.data(), kBlockSize / 2);
  Decoded torn = decode_vec(older);
  EXPECT_EQ(torn.state, BlockState::kCorrupt);
  EXPECT_THAT(torn.problem, HasSubstr("checksum mismatch"));
}

// Test that each pass of N writes touches every block exactly once, and that
// required_seq inverts the mapping, for every block and acked count of small ledgers.
TEST(Ledger, LayoutIsAPermutationAndInvertible) {
  for (std::uint64_t n : {1u, 2u, 8u, 64u}) {
    Layout layout(n);
    for (std::uint64_t pass = 0; pass < 3; ++pass) {
      std::set<std::uint64_t> seen;
      for (std::uint64_t s = pass * n + 1; s <= (pass + 1) * n; ++s)
        seen.insert(layout.block_of(s));
      EXPECT_EQ(seen.size(), n);
    }
    for (std::uint64_t acked = 0; acked <= 3 * n + 1; ++acked) {
      for (std::uint64_t b = 0; b < n; ++b) {
        std::optional<std::uint64_t> want;
        for (std::uint64_t s = 1; s <= acked; ++s)
          if (layout.block_of(s) == b) want = s;
        EXPECT_EQ(layout.required_seq(b, acked), want)
            << "n=" << n << " b=" << b << " acked=" << acked;
      }
    }
  }
  EXPECT_THROW(Layout(12), std::invalid_argument);
  EXPECT_EQ(ledger_blocks(64u << 20, 64), 16384u);
  EXPECT_EQ(ledger_blocks(100u << 20, 64), 16384u);
  EXPECT_EQ(ledger_blocks(10u << 20, 64), 2048u);
  EXPECT_EQ(ledger_blocks(100, 64), 0u);
}

// Test that the console parser takes the highest ack per disk across boots,
// amid kernel messages, and collects memory and agent errors.
TEST(Ledger, ParsesConsole) {
  std::istringstream log(
      "[    0.000000] Linux version 6.1.0\r\n"
      "VMSHIFT AGENT START version=1 disks=0,1 mem_mib=16\n"
      "VMSHIFT DISK START disk=0 dev=/dev/vda blocks=16384 next_seq=1\n"
      "VMSHIFT ACK disk=0 seq=1\n"
      "VMSHIFT ACK disk=1 seq=9\n"
      "VMSHIFT ACK disk=0 seq=2\n"
      "[   12.5] random: crng init doneVMSHIFT ACK disk=0 seq=3\n"
      "VMSHIFT MEM OK pages=4096 writes=5000 checks=8000\n"
      "VMSHIFT AGENT START version=1 disks=0\n"
      "VMSHIFT DISK START disk=0 dev=/dev/vda blocks=16384 next_seq=4\n"
      "VMSHIFT ACK disk=0 seq=4\n"
      "VMSHIFT MEM ERROR page=7 expected=3 found=0\n"
      "VMSHIFT ERROR disk=1 write of seq 10 failed\n"
      "VMSHIFT ACK disk=0 se");
  Console c = parse_console(log);
  EXPECT_EQ(c.acked.at(0), 4u);
  EXPECT_EQ(c.acked.at(1), 9u);
  EXPECT_EQ(c.blocks.at(0), 16384u);
  EXPECT_FALSE(c.blocks.count(1));
  EXPECT_EQ(c.agent_starts, 2u);
  EXPECT_EQ(c.memory_checks, 8000u);
  ASSERT_EQ(c.memory_errors.size(), 1u);
  EXPECT_THAT(c.memory_errors[0], HasSubstr("page=7"));
  EXPECT_EQ(c.agent_errors.size(), 1u);
}

// A synthetic disk image in memory, written the way the agent writes.
class Image {
 public:
  explicit Image(std::uint64_t blocks) : layout_(blocks), data_(blocks * kBlockSize) {}
  void write_through(std::uint32_t disk, std::uint64_t last_seq) {
    for (std::uint64_t s = 1; s <= last_seq; ++s) put({disk, layout_.block_of(s), s});
  }
  void put(const Record& r) {
    auto b = block_of(r);
    std::memcpy(data_.data() + r.block * kBlockSize, b.data(), kBlockSize);
  }
  unsigned char* at(std::uint64_t block) { return data_.data() + block * kBlockSize; }
  DiskResult check(std::uint32_t disk, std::uint64_t acked) {
    return check_disk(disk, acked, layout_.blocks(), data_.size(),
                      [&](std::uint64_t off, std::span<unsigned char> out) {
                        std::memcpy(out.data(), data_.data() + off, out.size());
                      });
  }
  const Layout& layout() const { return layout_; }

 private:
  Layout layout_;
  std::vector<unsigned char> data_;
};

// Test that an image holding every acknowledged write passes, also with
// writes newer than the last acknowledgement.
TEST(Verify, AllGood) {
  Image img(256);
  img.write_through(1, 700);
  DiskResult r = img.check(1, 650);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.blocks_checked, 256u);
  EXPECT_EQ(r.acknowledged, 650u);
}

// Test that a zeroed block that an acknowledged write went to is a lost write.
TEST(Verify, ZeroedBlockIsLost) {
  Image img(256);
  img.write_through(0, 100);
  std::uint64_t victim = img.layout().block_of(50);
  std::memset(img.at(victim), 0, kBlockSize);
  DiskResult r = img.check(0, 100);
  EXPECT_EQ(r.lost, 1u);
  EXPECT_EQ(r.corrupt, 0u);
  EXPECT_THAT(r.examples.at(0), HasSubstr("empty, but write 50 to it was acknowledged"));
  // Before write 50 was acknowledged, the same image is fine.
  EXPECT_TRUE(img.check(0, 49).ok());
}

// Test that a block holding an older record than acknowledged is a lost write.
TEST(Verify, OlderRecordIsLost) {
  Image img(64);
  img.write_through(0, 200);  // 3 passes and a bit
  std::uint64_t victim = img.layout().block_of(190);
  img.put({0, victim, 190 - 64});
  DiskResult r = img.check(0, 200);
  EXPECT_EQ(r.lost, 1u);
  EXPECT_THAT(r.examples.at(0), HasSubstr("rolled back"));
}

// Test that torn records and records of another disk or block count as corrupt.
TEST(Verify, TornAndMisplacedRecords) {
  Image img(64);
  img.write_through(2, 64);
  img.at(5)[100] ^= 0xff;
  std::memcpy(img.at(9), img.at(10), kBlockSize);  // block 10's record written to block 9
  img.put({3, 20, 30});                            // another disk's record
  DiskResult r = img.check(2, 64);
  EXPECT_EQ(r.corrupt, 3u);
  EXPECT_THAT(r.examples, ::testing::Contains(HasSubstr("misplaced")));
}

// Test that an image smaller than the ledger cannot be verified.
TEST(Verify, ImageTooSmall) {
  Image img(64);
  EXPECT_THROW(check_disk(0, 1, 128, 64 * kBlockSize, [](auto, auto) {}), Error);
}

// Test the qemu-nbd argv: read-only, format given, shared with a running QEMU,
// commas in the path escaped.
TEST(Verify, QemuNbdArgv) {
  EXPECT_EQ(qemu_nbd_argv("/img/a,b.qcow2", "qcow2"),
            (std::vector<std::string>{"qemu-nbd", "--read-only", "--image-opts",
                                      "driver=qcow2,force-share=on,file.driver=file,"
                                      "file.filename=/img/a,,b.qcow2"}));
  EXPECT_THROW(qemu_nbd_argv("/x", "vmdk"), Error);
}

}  // namespace
}  // namespace vmshift::ledger
