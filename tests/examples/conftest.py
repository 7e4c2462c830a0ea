"""The examples run torch at tiny sizes too: reuse tests/nn's one-thread fixture (it also
restores the thread count that the examples' main() sets)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("maskc_tests_nn_conftest", Path(__file__).parents[1] / "nn" / "conftest.py")
_nn_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_nn_conftest)
_one_torch_thread = _nn_conftest._one_torch_thread
