#!/usr/bin/env python3
"""Prints the ninja targets (paths relative to the build directory) that the
tests of the given meson suites need, so a build directory can build only
those: scripts/test builds its ASan tree this way.
Usage: suite_targets.py BUILD_DIR SUITE [SUITE...]"""
import json
import os
import subprocess
import sys


def introspect(build, what):
    out = subprocess.run(["meson", "introspect", build, what],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    build = os.path.abspath(sys.argv[1])
    suites = {f"vmshift:{s}" for s in sys.argv[2:]}
    files = {t["id"]: t["filename"] for t in introspect(build, "--targets")}
    wanted = set()
    for test in introspect(build, "--tests"):
        if suites & set(test["suite"]):
            for dep in test.get("depends", []):
                for f in files.get(dep, []):
                    wanted.add(os.path.relpath(f, build))
    if not wanted:
        sys.exit(f"suite_targets.py: no test of {' '.join(sys.argv[2:])} in {build}")
    print("\n".join(sorted(wanted)))


if __name__ == "__main__":
    main()
