"""Several live migrations at once, with the default limit and a raised one."""

import os
import subprocess
import time

from ..common import Measured

SPECS = {"scale": {"baseline": "limit 2 (default)"}}


def scenario(b):
    counts = [1, 2] if b.a.quick else [1, 2, 4, 8]
    names = [f"s{i}" for i in range(max(counts))]
    for n in counts:
        for raised in ([False] if b.a.quick else [False, True]):
            def fn(n=n, raised=raised):
                guests = names[:n]
                for g in guests:
                    h = b.lab.where(g)
                    if h is None or b.lab.state(h, g) != "running":
                        b.lab.boot(g, "host1", storage="shared", ram=128, write_rate=1,
                                   dirty_rate=0, disk_mib=64, heartbeat_ms=1000)
                where = {g: b.lab.where(g) for g in guests}
                start = time.monotonic()
                procs = []
                for g in guests:
                    to = "host2" if where[g] == "host1" else "host1"
                    procs.append(subprocess.Popen(
                        b.vmshift_argv("migrate", g, "--to", to, "--json"),
                        env=b.env(raised), stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True))
                errs = []
                cpu = 0.0
                rss = 0.0
                for p in procs:
                    _, status, ru = os.wait4(p.pid, 0)
                    p.returncode = os.waitstatus_to_exitcode(status)
                    cpu += ru.ru_utime + ru.ru_stime
                    rss = max(rss, ru.ru_maxrss / 1024)
                    if p.returncode != 0:
                        errs.append(p.stderr.read().strip()[-200:])
                took = time.monotonic() - start
                for g in guests:
                    h = b.lab.where(g)
                    if h is None or b.lab.state(h, g) != "running":
                        errs.append(f"{g} is not running after its migration")
                return Measured(total_s=took, cpu_s=cpu, rss_mib=rss, ok=not errs,
                                note="; ".join(errs))
            limit = "limit 8" if raised else "limit 2 (default)"
            b.alternate("scale", f"{n} at once", [(limit, fn)])
    for g in names:
        b.lab.remove(g)
