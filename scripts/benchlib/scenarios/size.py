"""Copy time by virtual size, the allocated data fixed."""

from .. import images

SPECS = {"size": {"baseline": "qemu-img convert"}}


def scenario(b):
    sizes = [1024, 2048] if b.a.quick else [1024, 2048, 4096, 8192]
    alloc = 64 if b.a.quick else 256
    src, dst = f"{b.lab.images}/bench-src.raw", f"{b.lab.images}/bench-dst.raw"
    for virt in sizes:
        images.make_raw(b, "host1", src, virt, alloc)
        variants = [v for v in images.copy_variants(b, src, dst, virt) if v[0] != "nbdcopy"]
        b.alternate("size", f"{virt // 1024} GiB virtual, {alloc} MiB allocated", variants)
    b.lab.remove_files("host1", src)
    b.lab.remove_files("host2", dst)
