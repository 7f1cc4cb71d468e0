// vmshift-guest-agent: the test guest's workload, PID 1 of its initramfs.
//
// Disk ledger: on every virtio disk, records written with O_DIRECT and made
// durable with fdatasync, each acknowledged on the console only after that.
// Memory ledger: pages rewritten at a set rate and checked continuously.
// Heartbeat: a line at a fixed interval. Settings come from the kernel
// command line (vmshift.*); see docs/guest.md. The agent never exits.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ledger/ledger.h"

namespace vmshift::ledger {
namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
  double write_rate = 20;  // per second per disk; 0 = as fast as possible
  std::uint64_t mem_mib = 16;
  double dirty_rate = 1;  // MiB per second
  std::uint64_t heartbeat_ms = 200;
  std::uint64_t ledger_mib = 64;
  std::string write_rate_text = "20";
};

int console_fd = 2;

void say(const std::string& line) {
  std::string l = "VMSHIFT " + line + "\n";
  const char* p = l.data();
  std::size_t left = l.size();
  while (left > 0) {
    ssize_t n = ::write(console_fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::string errno_text(int err) { return std::strerror(err); }

Settings read_settings() {
  Settings s;
  std::ifstream in("/proc/cmdline");
  std::string word;
  while (in >> word) {
    auto eq = word.find('=');
    if (word.rfind("vmshift.", 0) != 0 || eq == std::string::npos) continue;
    std::string key = word.substr(8, eq - 8), value = word.substr(eq + 1);
    char* end = nullptr;
    double number = std::strtod(value.c_str(), &end);
    bool numeric = end != value.c_str() && *end == '\0' && number >= 0;
    if (key == "write_rate") {
      s.write_rate_text = value;
      s.write_rate = value == "max" ? 0 : numeric ? number : s.write_rate;
    } else if (key == "mem_mib" && numeric) {
      s.mem_mib = static_cast<std::uint64_t>(number);
    } else if (key == "dirty_rate" && numeric) {
      s.dirty_rate = number;
    } else if (key == "heartbeat_ms" && numeric && number >= 10) {
      s.heartbeat_ms = static_cast<std::uint64_t>(number);
    } else if (key == "ledger_mib" && numeric && number >= 1) {
      s.ledger_mib = static_cast<std::uint64_t>(number);
    } else {
      say("ERROR ignoring kernel parameter " + word);
    }
  }
  return s;
}

// Paces a loop at `rate` events per second (0: no pacing). After a long
// stall (the VM was paused), it does not rush to catch up.
class Pacer {
 public:
  explicit Pacer(double rate) : rate_(rate), next_(Clock::now()) {}
  void wait() {
    if (rate_ <= 0) return;
    auto now = Clock::now();
    auto period =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate_));
    if (now - next_ > std::chrono::seconds(1)) next_ = now;
    next_ += period;
    if (next_ > now) std::this_thread::sleep_until(next_);
  }

 private:
  double rate_;
  Clock::time_point next_;
};

unsigned char* aligned_buffer(std::size_t size) {
  void* p = nullptr;
  if (::posix_memalign(&p, 4096, size) != 0) return nullptr;
  std::memset(p, 0, size);
  return static_cast<unsigned char*>(p);
}

struct Disk {
  std::string dev;
  std::uint32_t id = 0;
};

void run_disk(Disk disk, Settings settings) {
  int fd = ::open(disk.dev.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    say("ERROR disk=" + std::to_string(disk.id) + " cannot open " + disk.dev + ": " +
        errno_text(errno));
    return;
  }
  std::uint64_t bytes = 0;
  if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) {
    say("ERROR disk=" + std::to_string(disk.id) + " cannot size " + disk.dev);
    return;
  }
  std::uint64_t blocks = ledger_blocks(bytes, settings.ledger_mib);
  if (blocks == 0) {
    say("ERROR disk=" + std::to_string(disk.id) + " " + disk.dev + " is too small");
    return;
  }
  Layout layout(blocks);

  // Continue after the newest record already on the disk, so that a guest
  // restarted on its old disks keeps its sequence numbers growing.
  constexpr std::size_t kChunk = 1 << 20;
  unsigned char* chunk = aligned_buffer(kChunk);
  std::uint64_t newest = 0, foreign = 0;
  for (std::uint64_t off = 0; off < blocks * kBlockSize; off += kChunk) {
    std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, blocks * kBlockSize - off));
    ssize_t got = ::pread(fd, chunk, want, static_cast<off_t>(off));
    if (got != static_cast<ssize_t>(want)) {
      say("ERROR disk=" + std::to_string(disk.id) + " cannot read " + disk.dev + ": " +
          (got < 0 ? errno_text(errno) : "short read"));
      break;
    }
    for (std::size_t b = 0; b < want; b += kBlockSize) {
      Decoded d = decode(std::span<const unsigned char, kBlockSize>(chunk + b, kBlockSize));
      if (d.state != BlockState::kValid) continue;
      if (d.record.disk_id != disk.id)
        ++foreign;
      else
        newest = std::max(newest, d.record.seq);
    }
  }
  std::free(chunk);
  if (foreign > 0)
    say("ERROR disk=" + std::to_string(disk.id) + " " + disk.dev + " holds " +
        std::to_string(foreign) + " records of another disk");
  say("DISK START disk=" + std::to_string(disk.id) + " dev=" + disk.dev +
      " blocks=" + std::to_string(blocks) + " next_seq=" + std::to_string(newest + 1));

  unsigned char* buf = aligned_buffer(kBlockSize);
  Pacer pacer(settings.write_rate);
  for (std::uint64_t seq = newest + 1;; ++seq) {
    pacer.wait();
    Record r{disk.id, layout.block_of(seq), seq};
    encode(r, std::span<unsigned char, kBlockSize>(buf, kBlockSize));
    for (;;) {
      ssize_t n = ::pwrite(fd, buf, kBlockSize, static_cast<off_t>(r.block * kBlockSize));
      int err = n < 0 ? errno : 0;
      if (n == static_cast<ssize_t>(kBlockSize) && ::fdatasync(fd) == 0) break;
      if (err == 0) err = errno;
      say("ERROR disk=" + std::to_string(disk.id) + " write of seq " + std::to_string(seq) +
          " failed: " + errno_text(err) + "; retrying");
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    say("ACK disk=" + std::to_string(disk.id) + " seq=" + std::to_string(seq));
  }
}

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

void fill_page(std::uint64_t* page, std::uint64_t index, std::uint64_t seq) {
  std::uint64_t base = mix(index * 0x9e3779b97f4a7c15ULL + seq);
  for (std::size_t i = 0; i < kBlockSize / 8; ++i) page[i] = base + i;
}

void run_memory(Settings settings) {
  std::uint64_t pages = settings.mem_mib * (1024 * 1024 / kBlockSize);
  void* mem = ::mmap(nullptr, pages * kBlockSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (mem == MAP_FAILED) {
    say("ERROR memory ledger: cannot map " + std::to_string(settings.mem_mib) + " MiB");
    return;
  }
  auto* words = static_cast<std::uint64_t*>(mem);
  std::vector<std::uint64_t> last(pages, 1);
  for (std::uint64_t p = 0; p < pages; ++p) fill_page(words + p * 512, p, 1);
  std::uint64_t writes = pages, checks = 0, next_write = 0, next_check = 0;
  double write_pages_per_tick = settings.dirty_rate * 256 / 10;                 // ticks of 100 ms
  std::uint64_t check_pages_per_tick = std::max<std::uint64_t>(1, pages / 20);  // all in ~2 s
  double owed = 0;
  auto next_report = Clock::now();
  auto tick = Clock::now();
  std::vector<std::uint64_t> expect(512);
  for (;;) {
    tick += std::chrono::milliseconds(100);
    if (Clock::now() - tick > std::chrono::seconds(1)) tick = Clock::now();
    std::this_thread::sleep_until(tick);
    for (owed += write_pages_per_tick; owed >= 1; owed -= 1) {
      std::uint64_t p = next_write++ % pages;
      fill_page(words + p * 512, p, ++last[p]);
      ++writes;
    }
    for (std::uint64_t k = 0; k < check_pages_per_tick; ++k) {
      std::uint64_t p = next_check++ % pages;
      fill_page(expect.data(), p, last[p]);
      if (std::memcmp(expect.data(), words + p * 512, kBlockSize) != 0) {
        say("MEM ERROR page=" + std::to_string(p) + " expected=" + std::to_string(last[p]) +
            " found=" + std::to_string(words[p * 512]) +
            " (memory changed behind the guest's back)");
        fill_page(words + p * 512, p, last[p]);  // report each loss once
      }
      ++checks;
    }
    if (Clock::now() >= next_report) {
      say("MEM OK pages=" + std::to_string(pages) + " writes=" + std::to_string(writes) +
          " checks=" + std::to_string(checks));
      next_report = Clock::now() + std::chrono::seconds(2);
    }
  }
}

std::vector<Disk> find_disks() {
  std::vector<Disk> disks;
  for (char c = 'a'; c <= 'z'; ++c) {
    std::string dev = std::string("/dev/vd") + c;
    struct stat st {};
    if (::stat(dev.c_str(), &st) != 0) continue;
    if (!S_ISBLK(st.st_mode)) {
      // Without the virtio modules, a write would create a plain file here.
      say("ERROR " + dev + " is not a block device; not writing to it");
      continue;
    }
    disks.push_back({dev, static_cast<std::uint32_t>(c - 'a')});
  }
  return disks;
}

}  // namespace
}  // namespace vmshift::ledger

int main() {
  using namespace vmshift::ledger;
  int fd = ::open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) console_fd = fd;
  Settings s = read_settings();
  std::vector<Disk> disks = find_disks();
  std::string ids;
  for (const auto& d : disks) ids += (ids.empty() ? "" : ",") + std::to_string(d.id);
  std::ostringstream start;
  start << "AGENT START version=" << kVersion << " disks=" << (ids.empty() ? "none" : ids)
        << " mem_mib=" << s.mem_mib << " write_rate=" << s.write_rate_text
        << " dirty_rate=" << s.dirty_rate << " heartbeat_ms=" << s.heartbeat_ms;
  say(start.str());
  std::vector<std::thread> threads;
  for (const auto& d : disks) threads.emplace_back(run_disk, d, s);
  if (s.mem_mib > 0) threads.emplace_back(run_memory, s);
  auto start_time = Clock::now();
  auto next = start_time;
  for (std::uint64_t n = 1;; ++n) {
    next += std::chrono::milliseconds(s.heartbeat_ms);
    if (Clock::now() - next > std::chrono::seconds(1)) next = Clock::now();
    std::this_thread::sleep_until(next);
    struct timespec ts {};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    say("HB n=" + std::to_string(n) +
        " ms=" + std::to_string(ts.tv_sec * 1000LL + ts.tv_nsec / 1000000));
  }
}
