"""Optional dependencies, checked in one place: is one installed, and import it or say how to install it.

    import_optional("pyarrow.parquet", "reading parquet files")          # the module, or a UserError
    import_optional("bitsandbytes", "--quantize 4bit", extra="gpu")
    is_installed("bitsandbytes")                                          # without importing it
"""

from __future__ import annotations

import importlib
import importlib.util

from harness.errors import UserError


def is_installed(module: str) -> bool:
    """Whether `module` can be imported, found without importing it (some have unmet optional deps)."""
    return importlib.util.find_spec(module) is not None


def import_optional(module: str, purpose: str, extra: str = "datasets"):
    """Import a heavy optional dependency when it is needed, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{purpose} needs the package '{module.split('.')[0]}': "
                        f"pip install 'rag-harness[{extra}]'") from None


def require_installed(module: str, purpose: str, extra: str) -> None:
    """A UserError naming the extra to install when `module` is missing; imports nothing."""
    if not is_installed(module):
        raise UserError(f"{purpose} needs {module}: pip install 'rag-harness[{extra}]'")
