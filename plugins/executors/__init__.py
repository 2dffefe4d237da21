"""Built-in grid executors beyond the core's `local` (harness/executors.py): one per file."""
