#!/usr/bin/env python3
"""Counts test results of one or more meson build directories.

Usage: test_summary.py [--extra NAME=PASS|FAIL ...] LABEL=BUILDDIR ...

Counts every GoogleTest case (from meson's JUnit log) and every other meson
test as one. A meson test that failed without a failing case (a crash, a
timeout, a sanitizer abort after the cases ran) counts as one more failure,
and a skipped case counts as failed: no test passes by being skipped.
The last line printed is "N passed, N failed"; exit status 1 if any failed.
"""
import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict


def summarize(label, builddir):
    logdir = f"{builddir}/meson-logs"
    try:
        with open(f"{logdir}/testlog.json") as f:
            results = {json.loads(line)["name"]: json.loads(line)["result"] for line in f if line.strip()}
        root = ET.parse(f"{logdir}/testlog.junit.xml").getroot()
    except (OSError, ET.ParseError) as e:
        print(f"{label}: no test results ({e})")
        return 0, 1, []
    passed, failed, failures = 0, 0, []
    per_suite = defaultdict(lambda: [0, 0])
    failing_tests = set()
    for suite in root.iter("testsuite"):
        sname = suite.get("name", "")
        for case in suite.iter("testcase"):
            if sname.startswith("vmshift.") and " / " in sname:
                meson_name, _, group = sname[len("vmshift."):].rpartition(".")
                case_name = f"{group}.{case.get('name')}"
            else:
                meson_name, case_name = case.get("name"), case.get("name")
            bad = [c for c in case if c.tag in ("failure", "error", "skipped")]
            kind = meson_name.split(" / ")[0].split(":")[-1]
            if bad:
                failed += 1
                per_suite[kind][1] += 1
                failing_tests.add(meson_name)
                why = "skipped" if bad[0].tag == "skipped" else "failed"
                failures.append(f"{meson_name}: {case_name} {why}")
            else:
                passed += 1
                per_suite[kind][0] += 1
    for name, result in results.items():
        if result not in ("OK", "EXPECTEDFAIL") and name not in failing_tests:
            failed += 1
            per_suite[name.split(" / ")[0].split(":")[-1]][1] += 1
            failures.append(f"{name}: {result} (crashed, timed out or was skipped as a whole)")
    detail = ", ".join(f"{k} {p} passed/{f} failed" for k, (p, f) in sorted(per_suite.items()))
    print(f"{label}: {passed} passed, {failed} failed ({detail})")
    return passed, failed, failures


def main(argv):
    extras, builds = [], []
    it = iter(argv)
    for arg in it:
        if arg == "--extra":
            extras.append(next(it))
        else:
            builds.append(arg)
    total_p, total_f, all_failures = 0, 0, []
    for spec in builds:
        label, _, builddir = spec.partition("=")
        p, f, failures = summarize(label, builddir)
        total_p, total_f = total_p + p, total_f + f
        all_failures += [f"[{label}] {x}" for x in failures]
    for spec in extras:
        name, _, result = spec.partition("=")
        ok = result == "PASS"
        print(f"{name}: {'passed' if ok else 'FAILED'}")
        total_p += ok
        total_f += not ok
        if not ok:
            all_failures.append(name)
    for line in all_failures:
        print(f"FAILED: {line}")
    print(f"{total_p} passed, {total_f} failed")
    return 0 if total_f == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
