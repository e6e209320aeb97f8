"""The standard attack-and-corruption suite: one module per family, each a registered test."""
from .base import EvalContext, SuiteTest, TESTS, available_tests, register_test
from . import clean  # noqa: F401
from .suite import SUITES, available_suites, build_suite, context_for_run, evaluate, register_suite

__all__ = ["EvalContext", "SuiteTest", "TESTS", "available_tests", "register_test", "SUITES",
           "available_suites", "build_suite", "evaluate", "context_for_run", "register_suite"]
