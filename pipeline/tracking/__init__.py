"""The registry of every run and `pipeline report`."""
