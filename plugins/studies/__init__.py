"""Built-in studies: a paper's experiment as data (harness/study/spec.py), one per file."""
