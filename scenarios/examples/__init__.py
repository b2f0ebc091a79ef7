"""Example plugin simulators for tsodso scenarios (see docs/plugins.md)."""
