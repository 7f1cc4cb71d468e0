"""vmshift copy against qemu-img convert and nbdcopy over NBD, by the share
of the image allocated; and a copy killed half-way and resumed."""

import json
import os
import re
import signal
import subprocess
import time

from .. import images
from ..common import BenchError, Measured, poll, run

SPECS = {
    "copy": {"floor": "qemu-img convert", "baseline": "qemu-img convert"},
    "resume": {"baseline": "whole copy"},
}


def scenario(b):
    virt = 256 if b.a.quick else 1024
    fractions = [10, 100] if b.a.quick else [10, 50, 100]
    src, dst = f"{b.lab.images}/bench-src.raw", f"{b.lab.images}/bench-dst.raw"
    for pct in fractions:
        alloc = virt * pct // 100 // 4 * 4
        images.make_raw(b, "host1", src, virt, alloc)
        b.alternate("copy", f"{alloc} of {virt} MiB allocated",
                    images.copy_variants(b, src, dst, virt))
    resume_saving(b, src, dst, virt)
    b.lab.remove_files("host1", src)
    b.lab.remove_files("host2", dst)

def resume_saving(b, src, dst, virt):
    """A copy killed at half-way and resumed, against a whole copy."""
    def killed_and_resumed():
        b.lab.remove_files("host2", dst)
        p = subprocess.Popen(b.vmshift_argv("copy", f"host1:{src}", f"host2:{dst}",
                                            "--chunk-mib", "16", "--json"),
                             env=b.env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        t0 = time.monotonic()

        def half():
            j = b.last_job()
            total = j.get("bytes_total", 0)
            return j.get("state") == "running" and total > 0 and j.get(
                "bytes_done", 0) * 2 >= total and j
        try:
            job = poll("the copy to reach half-way", 600, half, every=0.02)
            # The copy runs in a job process of its own (the command in
            # the foreground only shows it): that process is the one to kill.
            os.kill(int(job["pid"]), signal.SIGKILL)
            poll("the job process to end", 60,
                 lambda: not os.path.exists(f"/proc/{job['pid']}"), every=0.02)
        finally:
            p.kill()
            p.wait()
        first = time.monotonic() - t0
        run(b.vmshift_argv("jobs"), env=b.env(), check=False)  # recovers it
        took, rc, out, err, cpu, rss = b.vmshift("jobs", "resume", str(job["id"]), "--json",
                                                 check=False)
        if rc != 0:
            raise BenchError(f"vmshift jobs resume: {(err or out).strip()[-400:]}")
        j = json.loads(run(b.vmshift_argv("jobs", "show", str(job["id"]), "--json"),
                           env=b.env()).stdout)
        detail = next((s["detail"] for s in j["steps"] if s["name"] == "copy"), "")
        m = re.match(r"(\d+) chunks copied \((\d+) done before\)", detail)
        return Measured(total_s=took, cpu_s=cpu, rss_mib=rss,
                        note=f"killed after {first:.1f} s; resumed: {detail}",
                        extra={"chunks_resent": int(m.group(1)) if m else None,
                               "chunks_kept": int(m.group(2)) if m else None})

    def whole():
        b.lab.remove_files("host2", dst)
        took, rc, out, err, cpu, rss = b.vmshift("copy", f"host1:{src}", f"host2:{dst}",
                                                 "--chunk-mib", "16", "--json")
        return Measured(total_s=took, cpu_s=cpu, rss_mib=rss)

    b.alternate("resume", f"{virt} MiB, killed at 50 %",
                [("resume after kill", killed_and_resumed), ("whole copy", whole)])
