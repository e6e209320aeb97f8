"""The standard attack-and-corruption suite: one module per family, each a registered test.

The suite judges any `nn.Module` taking [0, 1] images and never trains: the transfer attacks' surrogate
comes in as `EvalContext.surrogate`, provided by the application (`bench.app.pipeline`) or the caller.
"""
from .base import EvalContext, SuiteTest, Surrogate, TESTS, available_tests, register_test
from . import clean, noise, transfer, boundary, whitebox, corruptions  # noqa: F401  (register their tests)
from .suite import (SUITES, available_suites, build_suite, context_for_run, evaluate, register_suite,  # noqa: E402
                    suite_tests)
from . import robustbench_suite  # noqa: F401,E402  (the `robustbench` suite: RobustBench's protocol)

TRANSFER_TESTS = ("transfer_fgsm", "transfer_fgsm_reverse", "transfer_fgsm_extended", "transfer_fgsm_reverse_extended")


def needs_surrogate(suite: str, only=None) -> bool:
    """True when the suite (restricted to `only`) has a transfer test, which needs a surrogate model."""
    return any(t in TRANSFER_TESTS and (not only or t in only) for t in suite_tests(suite))


__all__ = ["EvalContext", "SuiteTest", "Surrogate", "TESTS", "available_tests", "register_test", "SUITES",
           "available_suites", "build_suite", "evaluate", "context_for_run", "register_suite", "suite_tests",
           "needs_surrogate", "TRANSFER_TESTS"]
