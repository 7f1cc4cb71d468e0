#include "ledger/ledger.h"

#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string_view>

namespace vmshift::ledger {
namespace {

std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    t[i] = c;
  }
  return t;
}

void put64(unsigned char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint64_t get64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
std::uint32_t get32(const unsigned char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// xorshift64*, seeded from the record's identity.
std::uint64_t fill_seed(const Record& r) {
  std::uint64_t s = r.seq * 0x9e3779b97f4a7c15ULL ^ (r.block + 1) * 0xbf58476d1ce4e5b9ULL ^
                    (static_cast<std::uint64_t>(r.disk_id) + 1) * 0x94d049bb133111ebULL;
  return s == 0 ? 1 : s;
}

// "key=value" of a console line, or nullopt.
std::optional<std::uint64_t> field(std::string_view line, std::string_view key) {
  std::string k = " " + std::string(key) + "=";
  auto pos = line.find(k);
  if (pos == std::string_view::npos) return std::nullopt;
  pos += k.size();
  std::uint64_t v = 0;
  std::size_t digits = 0;
  while (pos < line.size() && line[pos] >= '0' && line[pos] <= '9') {
    v = v * 10 + static_cast<std::uint64_t>(line[pos++] - '0');
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  return v;
}

}  // namespace

std::uint32_t crc32c(const unsigned char* data, std::size_t size, std::uint32_t crc) {
  static const std::array<std::uint32_t, 256> table = make_crc_table();
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

void encode(const Record& r, std::span<unsigned char, kBlockSize> out) {
  unsigned char* p = out.data();
  put64(p + kOffMagic, kMagic);
  put32(p + kOffVersion, kVersion);
  put32(p + kOffDisk, r.disk_id);
  put64(p + kOffBlock, r.block);
  put64(p + kOffSeq, r.seq);
  std::uint64_t x = fill_seed(r);
  for (std::size_t off = kOffFill; off + 8 <= kOffCrc; off += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    put64(p + off, x * 0x2545f4914f6cdd1dULL);
  }
  put32(p + kOffCrc, crc32c(p, kOffCrc));
}

Decoded decode(std::span<const unsigned char, kBlockSize> in) {
  const unsigned char* p = in.data();
  Decoded d;
  bool zero = true;
  for (unsigned char c : in) {
    if (c != 0) {
      zero = false;
      break;
    }
  }
  if (zero) return d;
  d.state = BlockState::kCorrupt;
  if (get64(p + kOffMagic) != kMagic) {
    d.problem = "no ledger record (bad magic)";
    return d;
  }
  if (get32(p + kOffVersion) != kVersion) {
    d.problem = "unknown record version " + std::to_string(get32(p + kOffVersion));
    return d;
  }
  if (get32(p + kOffCrc) != crc32c(p, kOffCrc)) {
    d.problem = "checksum mismatch (torn or damaged record)";
    return d;
  }
  d.state = BlockState::kValid;
  d.record.disk_id = get32(p + kOffDisk);
  d.record.block = get64(p + kOffBlock);
  d.record.seq = get64(p + kOffSeq);
  return d;
}

Layout::Layout(std::uint64_t blocks) : blocks_(blocks), mask_(blocks - 1) {
  if (blocks == 0 || (blocks & (blocks - 1)) != 0)
    throw std::invalid_argument("ledger size must be a power of two blocks");
  // Newton's iteration for the inverse of an odd number modulo 2^64.
  std::uint64_t x = kStride;
  for (int i = 0; i < 6; ++i) x *= 2 - kStride * x;
  inverse_ = x;
}

std::uint64_t Layout::block_of(std::uint64_t seq) const { return ((seq - 1) * kStride) & mask_; }

std::optional<std::uint64_t> Layout::required_seq(std::uint64_t block, std::uint64_t acked) const {
  std::uint64_t r = (block * inverse_) & mask_;  // (s - 1) mod N for writes to this block
  if (acked == 0 || r + 1 > acked) return std::nullopt;
  std::uint64_t pass = (acked - 1 - r) / blocks_;
  return r + 1 + pass * blocks_;
}

std::uint64_t ledger_blocks(std::uint64_t disk_bytes, std::uint64_t ledger_mib) {
  std::uint64_t fit = std::min(disk_bytes / kBlockSize, ledger_mib * (1024 * 1024 / kBlockSize));
  if (fit == 0) return 0;
  std::uint64_t n = 1;
  while (n * 2 <= fit) n *= 2;
  return n;
}

Console parse_console(std::istream& in) {
  Console c;
  std::string raw;
  while (std::getline(in, raw)) {
    std::string_view line(raw);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    // A line may carry earlier output without a newline (e.g. a kernel
    // message): the agent's text starts at its prefix.
    auto at = line.find("VMSHIFT ");
    if (at == std::string_view::npos) continue;
    line.remove_prefix(at);
    if (line.starts_with("VMSHIFT ACK ")) {
      auto disk = field(line, "disk");
      auto seq = field(line, "seq");
      if (disk && seq) {
        auto& a = c.acked[static_cast<std::uint32_t>(*disk)];
        a = std::max(a, *seq);
      }
    } else if (line.starts_with("VMSHIFT DISK START ")) {
      auto disk = field(line, "disk");
      auto blocks = field(line, "blocks");
      if (disk && blocks) c.blocks[static_cast<std::uint32_t>(*disk)] = *blocks;
    } else if (line.starts_with("VMSHIFT HB ")) {
      ++c.heartbeats;
    } else if (line.starts_with("VMSHIFT MEM OK ")) {
      if (auto checks = field(line, "checks")) c.memory_checks = *checks;
    } else if (line.starts_with("VMSHIFT MEM ERROR")) {
      c.memory_errors.emplace_back(line);
    } else if (line.starts_with("VMSHIFT ERROR")) {
      c.agent_errors.emplace_back(line);
    } else if (line.starts_with("VMSHIFT AGENT START")) {
      ++c.agent_starts;
    }
  }
  return c;
}

}  // namespace vmshift::ledger
