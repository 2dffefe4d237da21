"""Built-in grid executors beyond the core's `local` (harness/grid/executors.py): one per file."""
