"""A live migration that copies the disks: vmshift migrate against virsh
migrate --copy-storage-all."""

import re

from ..common import BenchError, Measured, timed

SPECS = {"vsm": {"baseline": "virsh migrate --copy-storage-all"}}


def scenario(b):
    fill = 64 if b.a.quick else b.a.disk_mib
    g = "bv"

    def ours():
        b.lab.boot(g, "host1", fill_mib=fill, write_rate=5, dirty_rate=0, ram=b.a.ram)
        r, w, t0, t1, link, ratio = b.around(
            g, lambda: b.vmshift("migrate", g, "--to", "host2", "--json", check=False))
        took, rc, out, err, cpu, rss = r
        if rc != 0:
            raise BenchError(f"migrate: {(err or out).strip()[-400:]}")
        ok, note = b.lab.verify(g)
        return Measured(total_s=took, pause_ms=b.last_job().get("pause_ms"),
                        gap_ms=w.max_gap_ms(t0, t1), write_ratio=ratio, cpu_s=cpu,
                        rss_mib=rss, link_mib=link, ok=ok, note="" if ok else note)

    def virsh():
        b.lab.boot(g, "host1", fill_mib=fill, write_rate=5, dirty_rate=0, ram=b.a.ram)

        def go():
            t = timed(b.lab.enter("host1", [
                "virsh", "migrate", "--live", "--p2p", "--persistent", "--undefinesource",
                "--copy-storage-all", g, "qemu+tcp://host2/system"]))
            if t[1] != 0:
                raise BenchError(f"virsh migrate: {t[3].strip()[-300:]}")
            rm = timed(b.lab.enter("host1", ["rm", f"{b.lab.images}/{g}-vda.qcow2"]))
            return t[0] + rm[0]

        took, w, t0, t1, link, ratio = b.around(g, go)
        info = b.lab.virsh("host2", "domjobinfo", g, "--completed", check=False)
        m = re.search(r"Total downtime:\s+(\d+)", info)
        ok, note = b.lab.verify(g)
        return Measured(total_s=took, pause_ms=int(m.group(1)) if m else None,
                        gap_ms=w.max_gap_ms(t0, t1), write_ratio=ratio, link_mib=link, ok=ok,
                        note="" if ok else note)

    b.alternate("vsm", f"{fill} MiB of data", [("vmshift migrate", ours),
                                               ("virsh migrate --copy-storage-all", virsh)])
    b.lab.remove(g)
