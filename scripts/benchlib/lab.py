"""The lab of two simulated hosts the benchmarks run on (scripts/lab). What
the bench needs to know of it (addresses, namespaces, pids, paths, the
inventories) comes from `scripts/lab status --json` and `scripts/lab
inventory`, never from the lab's internals."""

import json
import os
import re

from .common import ROOT, BenchError, run


class Lab:
    def __init__(self, directory, name):
        self.dir, self.name = directory, name
        self.hosts = ["host1", "host2"]
        self.facts = None

    def lab(self, *args, check=True, timeout=900):
        return run([os.path.join(ROOT, "scripts/lab"), "--dir", self.dir, "--name", self.name,
                    *args], check=check, timeout=timeout)

    def up(self, link_rate, local_size):
        self.lab("down", check=False)
        args = ["up", "--hosts", str(len(self.hosts)), "--local-size", local_size]
        if link_rate:
            args += ["--link-rate", link_rate]
        self.lab(*args)
        self.facts = json.loads(self.lab("status", "--json").stdout)
        down = [h["name"] for h in self.facts["hosts"] if not h["up"]]
        if down:
            raise BenchError(f"lab hosts down after scripts/lab up: {', '.join(down)}")
        self.write_inventories()

    def down(self):
        self.lab("down", check=False)

    def host(self, name):
        for h in self.facts["hosts"]:
            if h["name"] == name:
                return h
        raise BenchError(f"the lab has no host {name}")

    @property
    def images(self):
        return self.facts["paths"]["images"]

    @property
    def shared(self):
        return self.facts["paths"]["shared"]

    def netns(self, host):
        return f"/run/netns/{self.host(host)['netns']}"

    def ip(self, host):
        return self.host(host)["ip"]

    def pid(self, host):
        """A process in the host's namespaces (its libvirtd)."""
        return str(self.host(host)["libvirtd_pid"])

    def enter(self, host, argv):
        """argv as it runs inside a host (its mounts, network, /etc/hosts);
        nsenter executes it directly, so timing and rusage are its own."""
        return ["nsenter", "--target", self.pid(host), "--mount", "--uts", "--net", "--", *argv]

    def sh(self, host, argv, check=True, timeout=900):
        return run(self.enter(host, argv), check=check, timeout=timeout)

    def virsh(self, host, *args, check=True):
        return self.lab("virsh", host, *args, check=check).stdout

    def write_inventories(self):
        """The controller's inventories: every host reached over TCP, so
        vmshift runs in a host's network namespace like a controller on that
        host and its traffic crosses the lab's links; the second one with the
        per-host limits raised (the scale scenario)."""
        self.inventory = os.path.join(self.dir, "bench.toml")
        with open(self.inventory, "w") as f:
            f.write(self.lab("inventory", "--tcp").stdout)
        self.raised_inventory = os.path.join(self.dir, "bench-raised.toml")
        with open(self.raised_inventory, "w") as f:
            f.write(self.lab("inventory", "--tcp", "--max-live-migrations", "8",
                             "--max-storage-migrations", "8").stdout)

    def link_bytes(self):
        """Bytes between the hosts: what crossed their links (switch side,
        both directions), halved (a byte from host1 to host2 crosses both)."""
        total = 0
        for h in self.hosts:
            out = run(["ip", "-n", self.facts["switch_netns"], "-s", "-j", "link", "show",
                       self.host(h)["switch_port"]]).stdout
            s = json.loads(out)[0]["stats64"]
            total += s["rx"]["bytes"] + s["tx"]["bytes"]
        return total // 2

    def console(self, guest):
        return os.path.join(self.facts["consoles_dir"], f"{guest}.log")

    def where(self, guest):
        for h in self.hosts:
            if self.virsh(h, "domstate", guest, check=False).strip():
                return h
        return None

    def state(self, host, guest):
        return self.lab("virsh", host, "domstate", guest, check=False).stdout.strip()

    def boot(self, guest, host, disks=1, disk_mib=128, fill_mib=0, storage="local", ram=192,
             write_rate=20, dirty_rate=0, heartbeat_ms=50):
        self.remove(guest)
        size = max(disk_mib, 64 + fill_mib)
        self.lab("guest", guest, "--host", host, "--disks", str(disks), "--disk-size",
                 f"{size}M", "--fill", str(fill_mib), "--storage", storage, "--ram", str(ram),
                 "--write-rate", str(write_rate), "--dirty-rate", str(dirty_rate),
                 "--heartbeat-ms", str(heartbeat_ms), timeout=300)

    def remove(self, guest):
        """The guest and every file of it on every host, gone."""
        for h in self.hosts:
            if self.state(h, guest):
                self.virsh(h, "destroy", guest, check=False)
                self.virsh(h, "undefine", guest, "--managed-save", "--nvram", check=False)
            self.sh(h, ["bash", "-c", f"rm -f {self.images}/{guest}[-.]* {self.shared}/{guest}[-.]*"],
                    check=False)
            for pool in ("images", "shared"):
                self.virsh(h, "pool-refresh", pool, check=False)

    def remove_files(self, host, *paths):
        self.sh(host, ["rm", "-f", *paths], check=False)
        for pool in ("images", "shared"):
            self.virsh(host, "pool-refresh", pool, check=False)

    def verify(self, guest):
        r = self.lab("verify", guest, check=False)
        lost = sum(int(n) for n in re.findall(r"(\d+) lost writes", r.stdout))
        mem = re.search(r"memory ledger: (\d+) errors", r.stdout)
        ok = r.returncode == 0 and lost == 0 and (mem is None or mem.group(1) == "0")
        return ok, r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()
