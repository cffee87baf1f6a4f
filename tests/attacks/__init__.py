"""The attack suite's tests: the contract test every registered attacker passes. A package,
so that its modules are imported as `attacks.*` and never clash with `tests/methods`."""
