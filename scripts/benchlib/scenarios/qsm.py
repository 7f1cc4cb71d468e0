"""A quick storage migration and a quick migration against the network
migration's outage (the pause is the measure)."""

import time

from ..common import BenchError, ConsoleWatch, Measured, poll

SPECS = {"qsm": {"baseline": "network", "key": "pause_ms"}}  # the pause against the outage


def scenario(b):
    fill = 64 if b.a.quick else b.a.disk_mib
    g = "bq"

    def moved(kind, storage):
        def fn():
            b.lab.boot(g, "host1", fill_mib=fill, storage=storage, write_rate=5,
                       ram=b.a.ram)
            args = ["migrate", g, "--to", "host2", "--type", kind, "--json"]
            r, w, t0, t1, link, ratio = b.around(g, lambda: b.vmshift(*args, check=False))
            took, rc, out, err, cpu, rss = r
            if rc != 0:
                raise BenchError(f"migrate --type {kind}: {(err or out).strip()[-400:]}")
            ok, note = b.lab.verify(g)
            return Measured(total_s=took, pause_ms=b.last_job().get("pause_ms"),
                            gap_ms=w.max_gap_ms(t0, t1), write_ratio=ratio, cpu_s=cpu,
                            rss_mib=rss, link_mib=link, ok=ok, note="" if ok else note,
                            extra={"outage_ms": w.max_gap_ms(t0, t1)})
        return fn

    def network():
        b.lab.boot(g, "host1", fill_mib=fill, write_rate=5, ram=b.a.ram)

        def go():
            w2 = ConsoleWatch(b.lab.console(g))
            try:
                stop = time.monotonic()
                b.lab.virsh("host1", "destroy", g)
                t = b.vmshift("migrate", g, "--to", "host2", "--start", "--json",
                              check=False)
                if t[1] != 0:
                    raise BenchError(f"migrate --type network: {(t[3] or t[2]).strip()[-400:]}")
                back = poll(f"{g} to beat again on host2", 180,
                            lambda: w2.first_beat_after(stop + t[0]))
                return t, (back - stop) * 1000
            finally:
                w2.stop()

        r, w, t0, t1, link, ratio = b.around(g, go)
        (took, rc, out, err, cpu, rss), outage = r
        ok, note = b.lab.verify(g)
        return Measured(total_s=took, pause_ms=round(outage), cpu_s=cpu, rss_mib=rss,
                        link_mib=link, ok=ok, note="" if ok else note,
                        extra={"outage_ms": round(outage)})

    b.alternate("qsm", f"{fill} MiB of data, {b.a.ram} MiB RAM",
                [("qsm", moved("qsm", "local")), ("quick (shared storage)",
                                                  moved("quick", "shared")),
                 ("network", network)])
    b.lab.remove(g)
