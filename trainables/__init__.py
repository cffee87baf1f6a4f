"""Everything a trial runs: data, split backbones, methods, the attack suite, metrics."""
