"""`python -m harness ...` is the `harness` command; `accelerate launch -m harness run ...` starts it per process."""

from harness.cli import main

if __name__ == "__main__":
    main()
