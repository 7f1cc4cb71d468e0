"""The bench: vmshift run as a controller on a lab host, every run
recorded (results.csv), variants run alternately."""

import csv
import json
import os
import subprocess
import time

from .common import MIB, VMSHIFT, BenchError, ConsoleWatch, Measured, log, poll, run, timed


class Bench:
    def __init__(self, args, lab):
        self.a, self.lab = args, lab
        self.rows = []
        self.state_dir = os.path.join(lab.dir, "state")

    # vmshift as a controller in host's network namespace, over TCP.
    def vmshift_argv(self, *args, host="host2"):
        return ["nsenter", f"--net={self.lab.netns(host)}", "--", VMSHIFT, *args]

    def env(self, raised=False):
        e = dict(os.environ)
        e["VMSHIFT_CONFIG"] = self.lab.raised_inventory if raised else self.lab.inventory
        e["VMSHIFT_STATE_DIR"] = self.state_dir
        return e

    def vmshift(self, *args, host="host2", raised=False, check=True, timeout=1800):
        r = timed(self.vmshift_argv(*args, host=host), env=self.env(raised), timeout=timeout)
        if check and r[1] != 0:
            raise BenchError(f"vmshift {' '.join(args)}: exit {r[1]}: {(r[3] or r[2]).strip()[-600:]}")
        return r

    def last_job(self):
        out = run(self.vmshift_argv("jobs", "--json"), env=self.env()).stdout
        jobs = json.loads(out)
        return max(jobs, key=lambda j: j["id"]) if jobs else {}

    def record(self, scenario, case, variant, run_no, m):
        row = {"scenario": scenario, "case": case, "variant": variant, "run": run_no,
               "ok": int(bool(m.ok)), "total_s": m.total_s, "pause_ms": m.pause_ms,
               "gap_ms": m.gap_ms, "link_mib": m.link_mib, "write_ratio": m.write_ratio,
               "cpu_s": m.cpu_s, "rss_mib": m.rss_mib, "note": m.note}
        row.update({k: v for k, v in m.extra.items()})
        self.rows.append(row)
        shown = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in row.items()
                          if k in ("total_s", "pause_ms", "gap_ms", "link_mib", "write_ratio",
                                   "cpu_s", "rss_mib") and v is not None)
        log(f"{scenario}/{case} {variant} run {run_no}: {'ok' if m.ok else 'FAILED'}; {shown}"
            + (f"; {m.note}" if m.note else ""))
        self.save()

    def save(self):
        os.makedirs(self.a.out, exist_ok=True)
        keys = []
        for r in self.rows:
            for k in r:
                if k not in keys:
                    keys.append(k)
        with open(os.path.join(self.a.out, "results.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for r in self.rows:
                w.writerow(r)

    def alternate(self, scenario, case, variants, runs=None):
        """Runs every variant runs times, alternately: A B A B ...; a failed
        run is recorded as such and the next one goes on."""
        runs = runs or self.a.runs
        for i in range(1, runs + 1):
            for name, fn in variants:
                try:
                    m = fn()
                except (BenchError, subprocess.TimeoutExpired) as e:
                    m = Measured(ok=False, note=str(e).replace("\n", " ")[:300])
                self.record(scenario, case, name, i, m)

    # ------------------------------------------------------- helpers ----

    def around(self, guest, fn, before_s=None):
        """Measures fn() (which returns (took, rc, out, err, cpu, rss) or a
        float) with the guest's console watched: heartbeat gap, write rate
        during vs before, link bytes."""
        before_s = before_s if before_s is not None else (2 if self.a.quick else 5)
        w = ConsoleWatch(self.lab.console(guest))
        try:
            time.sleep(before_s)  # the guest's write rate before the move (a measurement window)
            link0 = self.lab.link_bytes()
            t0 = time.monotonic()
            r = fn()
            t1 = time.monotonic()
            link = (self.lab.link_bytes() - link0) / MIB
            time.sleep(0.5)  # late console lines of the window
        finally:
            w.stop()
        before = w.ack_rate(t0 - before_s, t0)
        during = w.ack_rate(t0, t1)
        # Only meaningful for a guest that writes (an idle one acks 1/s).
        ratio = during / before if before and before >= 5 and during is not None else None
        return r, w, t0, t1, link, ratio

    def guest_alive(self, guest, seconds=30):
        w = ConsoleWatch(self.lab.console(guest))
        try:
            t = time.monotonic()
            poll(f"{guest} to keep writing", seconds, lambda: len([a for a in w.acks if a > t]) >= 2)
        finally:
            w.stop()
