"""The test suite (a regular package, so a `tests` package installed by another library cannot shadow it)."""
