"""What every benchmark module uses: running programs, polling, the
measurements of one run, and a guest's console watched as it runs."""

import os
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VMSHIFT = os.path.join(ROOT, "build/src/cli/vmshift")
MIB = 1 << 20


def log(msg):
    print(f"bench: {msg}", flush=True)


class BenchError(Exception):
    pass


def run(argv, check=True, timeout=900, env=None, capture=True):
    r = subprocess.run(argv, capture_output=capture, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited with {r.returncode}: {r.stderr.strip()[-800:]}")
    return r


def poll(what, seconds, fn, every=0.05):
    """Calls fn until it returns something true; fails after seconds."""
    end = time.monotonic() + seconds
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise BenchError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(every)



class ConsoleWatch:
    """Follows a guest's console log and timestamps each heartbeat and
    acknowledged write as it arrives (polled every 5 ms): the guest's own
    view of a pause (its longest heartbeat gap) and of its write rate."""

    def __init__(self, path):
        self.path, self.hb, self.acks = path, [], []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        # Only what arrives from now on: earlier lines have no arrival time.
        try:
            pos = os.path.getsize(self.path)
        except OSError:
            pos = 0
        part = ""
        while not self._stop.is_set():
            try:
                if os.path.getsize(self.path) < pos:  # a new boot truncated the log
                    pos = 0
                with open(self.path, "r", errors="replace") as f:
                    f.seek(pos)
                    data = f.read()
                    pos = f.tell()
            except OSError:
                data = ""
            if data:
                now = time.monotonic()
                lines = (part + data).split("\n")
                part = lines.pop()
                for line in lines:
                    if line.startswith("VMSHIFT HB"):
                        self.hb.append(now)
                    elif line.startswith("VMSHIFT ACK"):
                        self.acks.append(now)
            time.sleep(0.005)

    def stop(self):
        self._stop.set()
        self._t.join()

    def max_gap_ms(self, start, end):
        beats = [t for t in self.hb if start <= t <= end + 5]
        before = [t for t in self.hb if t < start]
        if before:
            beats.insert(0, before[-1])
        if len(beats) < 2:
            return None
        return round(max(b - a for a, b in zip(beats, beats[1:])) * 1000)

    def ack_rate(self, start, end):
        n = len([t for t in self.acks if start <= t <= end])
        return n / (end - start) if end > start else None

    def first_beat_after(self, t):
        for b in self.hb:
            if b > t:
                return b
        return None


class Measured:
    def __init__(self, **kw):
        self.total_s = kw.get("total_s")
        self.pause_ms = kw.get("pause_ms")
        self.gap_ms = kw.get("gap_ms")
        self.link_mib = kw.get("link_mib")
        self.write_ratio = kw.get("write_ratio")
        self.cpu_s = kw.get("cpu_s")
        self.rss_mib = kw.get("rss_mib")
        self.ok = kw.get("ok", True)
        self.note = kw.get("note", "")
        self.extra = kw.get("extra", {})


def timed(argv, env=None, timeout=1800):
    """Runs argv; returns (seconds, rc, stdout, stderr, cpu seconds, peak RSS MiB)."""
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out_err = {}

    def drain(name, stream):
        out_err[name] = stream.read()

    threads = [threading.Thread(target=drain, args=("out", p.stdout)),
               threading.Thread(target=drain, args=("err", p.stderr))]
    for t in threads:
        t.start()
    deadline = start + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(0.01)
    took = time.monotonic() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join()
    return (took, p.returncode, out_err.get("out", ""), out_err.get("err", ""),
            ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024)
