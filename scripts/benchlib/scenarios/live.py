"""A live migration on shared storage: vmshift migrate against virsh migrate."""

import re

from ..common import BenchError, Measured, timed

SPECS = {"live": {"baseline": "virsh migrate"}}


def scenario(b):
    cases = [("idle", 1, 0)]
    if not b.a.quick:
        cases.append((f"dirtying {b.a.dirty_rate} MiB/s", 5, b.a.dirty_rate))
    g = "bl"
    for case, write, dirty in cases:
        here = {"host": None}

        def ensure(write=write, dirty=dirty):
            h = b.lab.where(g)
            if h is None or b.lab.state(h, g) != "running":
                b.lab.boot(g, "host1", storage="shared", ram=b.a.ram, write_rate=write,
                           dirty_rate=dirty, disk_mib=64)
                h = "host1"
            else:
                try:
                    b.guest_alive(g)
                except BenchError:
                    b.lab.boot(g, "host1", storage="shared", ram=b.a.ram,
                               write_rate=write, dirty_rate=dirty, disk_mib=64)
                    h = "host1"
            here["host"] = h
            return h, "host2" if h == "host1" else "host1"

        def after(took, w, t0, t1, ratio, to, pause, cpu=None, rss=None, link=None):
            alive = b.lab.state(to, g) == "running"
            ok, note = (False, f"the guest is not running on {to} after the migration")
            if alive:
                try:
                    b.guest_alive(g)
                    ok, note = True, ""
                except BenchError as e:
                    ok, note = False, f"{e} (a TCG crash? docs/live-migration.md)"
            return Measured(total_s=took, pause_ms=pause, gap_ms=w.max_gap_ms(t0, t1),
                            write_ratio=ratio, cpu_s=cpu, rss_mib=rss, link_mib=link, ok=ok,
                            note=note)

        def ours(*extra):
            frm, to = ensure()
            r, w, t0, t1, link, ratio = b.around(
                g, lambda: b.vmshift("migrate", g, "--to", to, "--json", *extra,
                                     check=False))
            took, rc, out, err, cpu, rss = r
            if rc != 0:
                raise BenchError(f"migrate: {(err or out).strip()[-400:]}")
            return after(took, w, t0, t1, ratio, to, b.last_job().get("pause_ms"), cpu, rss,
                         link)

        def virsh():
            frm, to = ensure()

            def go():
                t = timed(b.lab.enter(frm, [
                    "virsh", "migrate", "--live", "--p2p", "--persistent", "--undefinesource",
                    "--unsafe", g, f"qemu+tcp://{to}/system"]))
                if t[1] != 0:
                    raise BenchError(f"virsh migrate: {t[3].strip()[-300:]}")
                return t[0]

            took, w, t0, t1, link, ratio = b.around(g, go)
            info = b.lab.virsh(to, "domjobinfo", g, "--completed", check=False)
            m = re.search(r"Total downtime:\s+(\d+)", info)
            return after(took, w, t0, t1, ratio, to, int(m.group(1)) if m else None, link=link)

        b.alternate("live", case, [("vmshift migrate", ours), ("virsh migrate", virsh),
                                   ("vmshift migrate --no-measure",
                                    lambda: ours("--no-measure"))])
        b.lab.remove(g)
