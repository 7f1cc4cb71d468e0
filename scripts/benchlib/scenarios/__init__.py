"""One module per scenario; each has scenario(bench) and SPECS (for each
scenario name it records, the variants its ratios are to)."""

from . import copy, floors, live, qsm, scale, size, storage, vsm

# In the order they run.
MODULES = {
    "floors": floors,
    "copy": copy,
    "storage": storage,
    "live": live,
    "vsm": vsm,
    "qsm": qsm,
    "scale": scale,
    "size": size,
}
SCENARIOS = list(MODULES)
SPECS = {name: spec for m in MODULES.values() for name, spec in m.SPECS.items()}
