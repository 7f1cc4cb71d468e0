"""The table of medians (results.md), the plot and the machine's facts."""

import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess

from .common import VMSHIFT, log, run
from .scenarios import SPECS


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def med(rows, key):
    vals = [num(r.get(key)) for r in rows if r["ok"] and num(r.get(key)) is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def fmt_stat(stat, digits=2, unit=""):
    m, lo, hi = stat
    if m is None:
        return ""
    f = f"{{:.{digits}f}}"
    s = f.format(m) + unit
    if lo != hi:
        s += f" ({f.format(lo)}-{f.format(hi)})"
    return s


def report(bench, args, info):
    rows = bench.rows
    out = []
    out.append(f"Run {info['when']} on {info['machine']}; {info['versions']}; "
               f"accel {info['accel']}; link {info['link']}; {args.runs} run(s) per variant"
               f"{' (--quick)' if args.quick else ''}.")
    out.append("")
    out.append("Ratios are of the median total time (qsm: of the pause, against the network "
               "migration's outage); below 1 is better.")
    out.append("")
    out.append("| scenario | case | variant | ok | total s | pause ms | heartbeat gap ms | "
               "link MiB | writes during/before | CPU % of a core | peak RSS MiB | vs baseline | "
               "vs floor |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    groups = []
    for r in rows:
        key = (r["scenario"], r["case"], r["variant"])
        if key not in groups:
            groups.append(key)
    for sc, case, var in groups:
        g = [r for r in rows if (r["scenario"], r["case"], r["variant"]) == (sc, case, var)]
        ok = sum(1 for r in g if r["ok"])
        spec = SPECS.get(sc, {})
        tot = med(g, "total_s")
        key = spec.get("key", "total_s")
        mine = med(g, key)[0]

        def ratio_to(other):
            if not other or other == var or mine is None:
                return ""
            o = [r for r in rows if (r["scenario"], r["case"], r["variant"]) == (sc, case, other)]
            om = med(o, key)[0]
            return f"{mine / om:.2f}x" if om else ""

        cpu = [num(r["cpu_s"]) / num(r["total_s"]) * 100 for r in g
               if r["ok"] and num(r.get("cpu_s")) is not None and num(r.get("total_s"))]
        cpu_s = f"{statistics.median(cpu):.1f}" if cpu else ""
        pause = med(g, "pause_ms")
        out.append("| " + " | ".join([
            sc, case, var, f"{ok}/{len(g)}", fmt_stat(tot), fmt_stat(pause, 0),
            fmt_stat(med(g, "gap_ms"), 0), fmt_stat(med(g, "link_mib"), 0),
            fmt_stat(med(g, "write_ratio"), 2), cpu_s, fmt_stat(med(g, "rss_mib"), 1),
            ratio_to(spec.get("baseline")), ratio_to(spec.get("floor"))]) + " |")
    failed = [r for r in rows if not r["ok"]]
    if failed:
        out.append("")
        out.append("Failed runs (not in the medians):")
        for r in failed:
            out.append(f"- {r['scenario']}/{r['case']} {r['variant']} run {r['run']}: {r['note']}")
    notes = [r for r in rows if r["ok"] and r.get("note")]
    if notes:
        out.append("")
        for r in notes:
            out.append(f"- {r['scenario']}/{r['case']} {r['variant']} run {r['run']}: {r['note']}")
    text = "\n".join(out) + "\n"
    open(os.path.join(args.out, "results.md"), "w").write(text)
    return text


def plot(bench, args):
    """Time vs allocated data (copy) and vs virtual size (size), PNG."""
    data = os.path.join(args.out, "plot.dat")
    series = []
    with open(data, "w") as f:
        for sc, xkey in (("copy", r"^(\d+) of"), ("size", r"^(\d+) GiB")):
            variants = []
            for r in bench.rows:
                if r["scenario"] == sc and r["variant"] not in variants:
                    variants.append(r["variant"])
            for v in variants:
                pts = {}
                for r in bench.rows:
                    if r["scenario"] == sc and r["variant"] == v and r["ok"]:
                        x = int(re.match(xkey, r["case"]).group(1))
                        pts.setdefault(x, []).append(float(r["total_s"]))
                if not pts:
                    continue
                f.write(f"# {sc} {v}\n")
                for x in sorted(pts):
                    f.write(f"{x} {statistics.median(pts[x])}\n")
                f.write("\n\n")
                series.append((sc, v))
    if not shutil.which("gnuplot") or not series:
        return None
    png = os.path.join(args.out, "time-vs-allocated.png")
    plots = {"copy": [], "size": []}
    for i, (sc, v) in enumerate(series):
        plots[sc].append(f"'{data}' index {i} using 1:2 with linespoints title '{v}'")
    script = f"""
set terminal pngcairo size 1000,420 font ',10' noenhanced
set output '{png}'
set multiplot layout 1,2
set grid
set key top left
set yrange [0:*]
set ylabel 'seconds'
set xlabel 'allocated MiB (virtual size fixed)'
set title 'Cross-host copy time vs allocated data'
plot {', '.join(plots['copy']) if plots['copy'] else '0 notitle'}
set xlabel 'virtual GiB (allocated data fixed)'
set title 'Cross-host copy time vs virtual size'
plot {', '.join(plots['size']) if plots['size'] else '0 notitle'}
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        log(f"gnuplot failed: {r.stderr.strip()}")
        return None
    return png


def machine_info(link):
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    ver = run([VMSHIFT, "version"], check=False).stdout
    libvirt = re.search(r"libvirt\D*([\d.]+)", ver)
    qemu = re.search(r"QEMU\D*([\d.]+)", ver)
    accel = re.search(r"\b(KVM|TCG|kvm|tcg)\b", ver)
    return {
        "when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} x {cpu}, {mem:.0f} GiB, {platform.platform()}",
        "versions": f"libvirt {libvirt.group(1) if libvirt else '?'}, "
                    f"QEMU {qemu.group(1) if qemu else '?'}",
        "accel": accel.group(1).upper() if accel else "?",
        "link": link or "unlimited (veth)",
    }
