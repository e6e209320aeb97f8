"""clean: top-1 accuracy on the (possibly subsampled) test set."""
from dataclasses import dataclass

from .base import EvalContext, SuiteTest, clean_predictions, register_test


@register_test("clean")
class Clean(SuiteTest):
    version = "1"

    @dataclass
    class Params:
        pass

    def run(self, ctx: EvalContext) -> dict:
        pred = clean_predictions(ctx)  # shared with the tests that need them (boundary starts, ...)
        return {"summary": {"accuracy": (pred == ctx.y).float().mean().item() if len(ctx.x) else float("nan")}}
