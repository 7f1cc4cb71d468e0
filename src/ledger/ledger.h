// The test guest's ledger: the on-disk record format, where each write goes,
// and the console lines the guest agent prints. Shared by the guest agent
// (which writes) and vmshift-verify (which checks). See docs/guest.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vmshift::ledger {

constexpr std::size_t kBlockSize = 4096;
constexpr std::uint64_t kMagic = 0x4744454c48534d56ULL;  // "VMSHLEDG" in little-endian bytes
constexpr std::uint32_t kVersion = 1;
// Offsets of the record's fields.
constexpr std::size_t kOffMagic = 0;
constexpr std::size_t kOffVersion = 8;
constexpr std::size_t kOffDisk = 12;
constexpr std::size_t kOffBlock = 16;
constexpr std::size_t kOffSeq = 24;
constexpr std::size_t kOffFill = 32;
constexpr std::size_t kOffCrc = kBlockSize - 4;

// CRC32C (Castagnoli), as used by iSCSI and ext4.
std::uint32_t crc32c(const unsigned char* data, std::size_t size, std::uint32_t crc = 0);

struct Record {
  std::uint32_t disk_id = 0;
  std::uint64_t block = 0;
  std::uint64_t seq = 0;
};

// Writes the record into a 4096-byte block: fields, a fill pattern derived
// from (disk, block, seq) so a torn write cannot pass, and the CRC.
void encode(const Record& r, std::span<unsigned char, kBlockSize> out);

enum class BlockState {
  kEmpty,    // all zero: never written
  kValid,    // a record with a correct magic, version and CRC
  kCorrupt,  // anything else: torn, overwritten, garbage
};

struct Decoded {
  BlockState state = BlockState::kEmpty;
  Record record;        // when kValid
  std::string problem;  // when kCorrupt
};

Decoded decode(std::span<const unsigned char, kBlockSize> in);

// Where the ledger's writes go. N = blocks() is a power of two; write number
// s (from 1) goes to block ((s - 1) * K) mod N with K odd, so every pass of N
// writes touches each block once, in a scattered order.
class Layout {
 public:
  static constexpr std::uint64_t kStride = 0x9e3779b97f4a7c15ULL;

  explicit Layout(std::uint64_t blocks);  // a power of two, at least 1
  std::uint64_t blocks() const { return blocks_; }
  std::uint64_t block_of(std::uint64_t seq) const;
  // The newest write number s <= acked with block_of(s) == block: the
  // record the block must hold at least. nullopt when no acknowledged write
  // went to the block.
  std::optional<std::uint64_t> required_seq(std::uint64_t block, std::uint64_t acked) const;

 private:
  std::uint64_t blocks_;
  std::uint64_t mask_;
  std::uint64_t inverse_;  // kStride^-1 mod 2^64
};

// The number of ledger blocks on a disk: the largest power of two that fits
// in both the disk and ledger_mib MiB. 0 if the disk holds not one block.
std::uint64_t ledger_blocks(std::uint64_t disk_bytes, std::uint64_t ledger_mib);

// What the guest's serial console says (see docs/guest.md).
struct Console {
  std::map<std::uint32_t, std::uint64_t> acked;   // disk -> highest acknowledged seq
  std::map<std::uint32_t, std::uint64_t> blocks;  // disk -> ledger blocks (DISK START)
  std::uint64_t agent_starts = 0;
  std::uint64_t heartbeats = 0;
  std::uint64_t memory_checks = 0;         // from the last MEM OK line
  std::vector<std::string> memory_errors;  // MEM ERROR lines
  std::vector<std::string> agent_errors;   // ERROR lines
};

// Reads a console log: lines of several boots, mixed with kernel messages
// and possibly a partial last line.
Console parse_console(std::istream& in);

}  // namespace vmshift::ledger
