"""Raw images with a given allocation, and the ways to copy one between
hosts (the copy and size scenarios)."""

import subprocess

from .common import MIB, BenchError, Measured, poll, timed


def make_raw(b, host, path, virt_mib, alloc_mib, pattern="urandom"):
    """A raw image of virt_mib with alloc_mib of data in 4 MiB extents
    spread evenly (the rest holes)."""
    b.lab.remove_files(host, path)
    extents = alloc_mib // 4
    step = max(4, (virt_mib // max(extents, 1)) // 4 * 4)
    script = (f"set -e; truncate -s {virt_mib}M {path}; "
              f"for i in $(seq 0 {extents - 1}); do "
              f"dd if=/dev/{pattern} of={path} bs=4M count=1 seek=$((i * {step // 4})) "
              f"conv=notrunc,fsync status=none; done")
    b.lab.sh(host, ["bash", "-c", script], timeout=600)
    b.lab.virsh(host, "pool-refresh", "images")

def nbd_server(b, host, path, port=10809):
    p = subprocess.Popen(b.lab.enter(host, ["qemu-nbd", "-r", "-f", "raw", "-t", "-p", str(port),
                                            "-b", "0.0.0.0", "--cache=none", "--aio=native",
                                            path]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    poll(f"qemu-nbd on {host}", 20,
         lambda: f":{port}" in b.lab.sh(host, ["ss", "-ltn"], check=False).stdout)
    return p

def copy_variants(b, src, dst, virt_mib):
    uri = f"nbd://{b.lab.ip('host1')}:10809"

    def ours():
        b.lab.remove_files("host2", dst)
        link0 = b.lab.link_bytes()
        took, rc, out, err, cpu, rss = b.vmshift("copy", f"host1:{src}", f"host2:{dst}",
                                                 "--json", check=False)
        link = (b.lab.link_bytes() - link0) / MIB
        if rc != 0:
            raise BenchError(f"vmshift copy: {(err or out).strip()[-400:]}")
        return Measured(total_s=took, cpu_s=cpu, rss_mib=rss, link_mib=link,
                        extra={"dest_alloc_mib": alloc_mib(b, "host2", dst)})

    def convert():
        b.lab.remove_files("host2", dst)
        server = nbd_server(b, "host1", src)
        try:
            link0 = b.lab.link_bytes()
            took, rc, out, err, cpu, rss = timed(b.lab.enter(
                "host2", ["qemu-img", "convert", "-f", "raw", "-O", "raw", uri, dst]))
            link = (b.lab.link_bytes() - link0) / MIB
        finally:
            server.kill()
            server.wait()
        if rc != 0:
            raise BenchError(f"qemu-img convert: {err.strip()[-400:]}")
        return Measured(total_s=took, cpu_s=cpu, rss_mib=rss, link_mib=link,
                        extra={"dest_alloc_mib": alloc_mib(b, "host2", dst)})

    def nbdcopy():
        b.lab.remove_files("host2", dst)
        b.lab.sh("host2", ["truncate", "-s", f"{virt_mib}M", dst])
        server = nbd_server(b, "host1", src)
        try:
            link0 = b.lab.link_bytes()
            took, rc, out, err, cpu, rss = timed(b.lab.enter("host2", ["nbdcopy", uri, dst]))
            link = (b.lab.link_bytes() - link0) / MIB
        finally:
            server.kill()
            server.wait()
        if rc != 0:
            raise BenchError(f"nbdcopy: {err.strip()[-400:]}")
        return Measured(total_s=took, cpu_s=cpu, rss_mib=rss, link_mib=link,
                        extra={"dest_alloc_mib": alloc_mib(b, "host2", dst)})

    return [("vmshift copy", ours), ("qemu-img convert", convert), ("nbdcopy", nbdcopy)]

def alloc_mib(b, host, path):
    out = b.lab.sh(host, ["stat", "-c", "%b %B", path], check=False).stdout.split()
    return round(int(out[0]) * int(out[1]) / MIB, 1) if len(out) == 2 else None
