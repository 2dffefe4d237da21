"""A tracker's failure is one warning and the run stays stored; a signal that comes out as a tracker's error
(inside a C extension's import it reads `ImportError: initialization failed`) is not a tracker failure."""

import pytest

from harness import errors
from harness.results.tracking import tracker_failure_warning
from tests.conftest import sigterm_inside_a_c_extension_import


def test_a_tracker_error_is_a_warning_but_a_signal_behind_it_goes_on(capsys):
    with tracker_failure_warning("mlflow", "run-1"):
        raise ImportError("initialization failed")
    assert "warning: mlflow export of run run-1 failed: ImportError: initialization failed; the run is stored; " \
           "retry with `harness export run-1 --track mlflow`" in capsys.readouterr().err
    with pytest.raises(errors.Terminated), tracker_failure_warning("mlflow", "run-1"):
        sigterm_inside_a_c_extension_import()
    assert capsys.readouterr().err == ""
