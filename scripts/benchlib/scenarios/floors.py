"""What the link carries: one TCP stream of zeros (socat)."""

import subprocess

from ..common import MIB, BenchError, Measured, poll, timed

SPECS = {"floors": {}}


def tcp_floor(b, mib):
    listen = subprocess.Popen(b.lab.enter("host2", ["socat", "-u", "TCP-LISTEN:5001,reuseaddr",
                                                    "OPEN:/dev/null"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll("the socat listener on host2", 20, lambda: "5001" in b.lab.sh(
            "host2", ["ss", "-ltn"], check=False).stdout)
        link0 = b.lab.link_bytes()
        took, rc, _, err, _, _ = timed(b.lab.enter("host1", [
            "bash", "-c", f"head -c {mib}M /dev/zero | socat -u - TCP:host2:5001"]))
        if rc != 0:
            raise BenchError(f"socat: {err.strip()}")
        link = (b.lab.link_bytes() - link0) / MIB
        listen.wait(timeout=20)
        return Measured(total_s=took, link_mib=link,
                        extra={"mib_s": round(mib / took, 1)})
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.wait()

def scenario(b):
    mib = 256 if b.a.quick else 1024
    b.alternate("floors", f"tcp {mib} MiB", [("socat", lambda: tcp_floor(b, mib))])
