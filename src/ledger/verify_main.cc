// vmshift-verify: did the test guest lose an acknowledged write?
//
//   vmshift-verify --console LOG (--image PATH --format qcow2|raw --disk ID)...
//
// Exit 0: nothing lost. 1: a lost write, a damaged record or a memory-ledger
// error. 2: cannot verify (bad usage, unreadable image, nothing acknowledged).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <fstream>

#include "base/error.h"
#include "ledger/verify.h"

int main(int argc, char** argv) {
  using namespace vmshift;
  using namespace vmshift::ledger;
  CLI::App app{"Checks a vmshift test guest's disks against its console log"};
  std::string console;
  std::vector<std::string> images, formats;
  std::vector<std::uint32_t> disks;
  app.add_option("--console", console, "The guest's serial console log")->required();
  app.add_option("--image", images, "A disk image (repeat for more disks)")->required();
  app.add_option("--format", formats, "Its format: qcow2 or raw (one per --image)")->required();
  app.add_option("--disk", disks, "Its disk id: 0 for vda, 1 for vdb, ... (one per --image)")
      ->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (images.size() != formats.size() || images.size() != disks.size()) {
    fmt::print(stderr, "vmshift-verify: give one --format and one --disk for each --image\n");
    return 2;
  }
  std::ifstream in(console);
  if (!in) {
    fmt::print(stderr, "vmshift-verify: cannot read the console log '{}'\n", console);
    return 2;
  }
  Console log = parse_console(in);

  bool lost = false, unverifiable = false;
  for (std::size_t i = 0; i < images.size(); ++i) {
    std::uint32_t id = disks[i];
    auto acked = log.acked.find(id);
    auto blocks = log.blocks.find(id);
    if (acked == log.acked.end() || blocks == log.blocks.end()) {
      fmt::print("disk {} ({}): cannot verify: the console log has no {} for disk {}\n", id,
                 images[i], acked == log.acked.end() ? "acknowledged write" : "DISK START line",
                 id);
      unverifiable = true;
      continue;
    }
    try {
      NbdImage image(images[i], formats[i]);
      DiskResult r = check_disk(
          id, acked->second, blocks->second, image.size(),
          [&](std::uint64_t off, std::span<unsigned char> out) { image.read(off, out); });
      fmt::print(
          "disk {} ({}): {} blocks checked, {} acknowledged writes, {} lost writes, {} "
          "torn/corrupt records\n",
          id, images[i], r.blocks_checked, r.acknowledged, r.lost, r.corrupt);
      for (const auto& e : r.examples) fmt::print("  {}\n", e);
      lost = lost || !r.ok();
    } catch (const Error& e) {
      fmt::print("disk {} ({}): cannot verify: {}\n", id, images[i], e.what());
      unverifiable = true;
    }
  }
  fmt::print("memory ledger: {} errors ({} page checks)\n", log.memory_errors.size(),
             log.memory_checks);
  for (std::size_t i = 0; i < log.memory_errors.size() && i < 5; ++i)
    fmt::print("  {}\n", log.memory_errors[i]);
  for (const auto& e : log.agent_errors) fmt::print("agent: {}\n", e);
  if (!log.memory_errors.empty()) lost = true;
  if (lost) {
    fmt::print("RESULT: data lost\n");
    return 1;
  }
  if (unverifiable) {
    fmt::print("RESULT: cannot verify\n");
    return 2;
  }
  fmt::print("RESULT: no acknowledged write lost\n");
  return 0;
}
