"""vmshift move-storage against virsh blockcopy, and local copies as the
floor."""

from ..common import BenchError, Measured, timed

SPECS = {"storage": {"baseline": "virsh blockcopy", "floor": "qemu-img convert"}}


def scenario(b):
    fill = 64 if b.a.quick else b.a.disk_mib
    cases = [("idle", 1)] if b.a.quick else [("idle", 1), ("writing", b.a.write_rate)]
    g = "bs"
    disk = f"{b.lab.images}/{g}-vda.qcow2"
    new = f"{b.lab.shared}/{g}-vda.qcow2"

    def boot(rate):
        b.lab.boot(g, "host1", fill_mib=fill, write_rate=rate)

    for case, rate in cases:
        for sync in ([False] if b.a.quick else [False, True]):
            label = f"{case}{', sync writes' if sync else ''}"

            def ours(rate=rate, sync=sync):
                boot(rate)
                args = ["move-storage", g, "--host", "host1", "--to", b.lab.shared, "--json"]
                if sync:
                    args.append("--sync-writes")
                r, w, t0, t1, link, ratio = b.around(
                    g, lambda: b.vmshift(*args, check=False))
                took, rc, out, err, cpu, rss = r
                if rc != 0:
                    raise BenchError(f"move-storage: {(err or out).strip()[-400:]}")
                job = b.last_job()
                ok, note = b.lab.verify(g)
                return Measured(total_s=took, pause_ms=job.get("pause_ms"),
                                gap_ms=w.max_gap_ms(t0, t1), write_ratio=ratio, cpu_s=cpu,
                                rss_mib=rss, ok=ok, note="" if ok else note)

            def virsh(rate=rate, sync=sync):
                boot(rate)
                argv = ["virsh", "blockcopy", g, "vda", new, "--wait", "--pivot", "--verbose",
                        "--transient-job", "--format", "qcow2"]
                if sync:
                    argv.append("--synchronous-writes")

                def both():
                    t = timed(b.lab.enter("host1", argv))
                    if t[1] != 0:
                        raise BenchError(f"virsh blockcopy: {t[3].strip()[-300:]}")
                    rm = timed(b.lab.enter("host1", ["rm", disk]))
                    return t[0] + rm[0]

                took, w, t0, t1, link, ratio = b.around(g, both)
                ok, note = b.lab.verify(g)
                return Measured(total_s=took, gap_ms=w.max_gap_ms(t0, t1), write_ratio=ratio,
                                ok=ok, note="" if ok else note)

            variants = [("vmshift move-storage", ours), ("virsh blockcopy", virsh)]
            if not sync and case == "idle":
                variants.append(("qemu-img convert", lambda: local_floor(b, g, fill, [
                    "qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", "-t", "none"])))
                variants.append(("cp --sparse", lambda: local_floor(b, g, fill, [
                    "cp", "--sparse=always"])))
            b.alternate("storage", label, variants)
    b.lab.remove(g)

def local_floor(b, g, fill, argv):
    """The same image copied by argv SRC DST and synced (guest shut off)."""
    b.lab.boot(g, "host1", fill_mib=fill, write_rate=1)
    b.lab.virsh("host1", "destroy", g)
    disk, copy = f"{b.lab.images}/{g}-vda.qcow2", f"{b.lab.shared}/{g}-copy.qcow2"
    took, rc, _, err, cpu, rss = timed(b.lab.enter("host1", [*argv, disk, copy]))
    if rc == 0:
        took += timed(b.lab.enter("host1", ["sync", copy]))[0]
    b.lab.remove_files("host1", copy)
    if rc != 0:
        raise BenchError(f"{argv[0]}: {err.strip()}")
    return Measured(total_s=took, cpu_s=cpu, rss_mib=rss)
