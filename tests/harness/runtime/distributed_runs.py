"""Run several `harness` commands in one launched process group (test helper, not a test):

    accelerate launch --cpu --num_processes 2 tests/harness/runtime/distributed_runs.py COMMANDS.json

COMMANDS.json is a list of argument lists; each runs through the real entry point (`harness.cli.main`) in
every process, one after the other, so the processes import torch once for all of them.
"""

import json
import sys

from harness.cli import main

if __name__ == "__main__":
    for args in json.loads(open(sys.argv[1]).read()):
        try:
            main(args)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
