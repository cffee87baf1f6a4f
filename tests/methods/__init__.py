"""Per-method tests (one `test_<method>.py` per entry of `METHODS`), the contract test every
registered method passes, and the tests of the method machinery. A package, so that its
modules (and `helpers`) are imported as `methods.*` and never clash with `tests/conftest.py`
or the top-level test modules under pytest's default (prepend) import mode."""
