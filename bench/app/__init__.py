"""The application: pipelines (run, evaluate, surrogate provisioning), sweeps and launchers, the
reproduction study, cost estimates and the RobustBench evaluation flow. The CLI only calls `bench.app.api`."""
