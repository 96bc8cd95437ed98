"""Tests of kiln_runtime (a package, so its conftest does not shadow the driver tests' `conftest` module
when scripts/test.sh runs both folders in one pytest session)."""
