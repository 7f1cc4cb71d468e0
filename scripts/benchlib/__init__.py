"""vmshift's benchmarks (scripts/bench): the lab they run on, the bench
that runs and records variants, one module per scenario, and the report."""
