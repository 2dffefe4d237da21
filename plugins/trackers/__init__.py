"""Built-in experiment trackers: each implements `run_finished` and is off unless named in HARNESS_TRACKERS."""
