"""Operating the platform: the local stack, migrations, the supervisor (`soma up`), process control,
private runs (a topic prefix and schema of their own) and the platform as bounded children for tests
and benchmarks."""
