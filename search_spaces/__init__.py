"""The shipped search spaces, one YAML per method (`search_space: <name>` in a spec): package
data, so an installed privsweep finds them as a checkout does (`sweeps.search_space`)."""
