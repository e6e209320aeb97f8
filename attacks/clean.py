"""clean: top-1 accuracy on the (possibly subsampled) test set."""
from dataclasses import dataclass

from .base import EvalContext, SuiteTest, accuracy, register_test


@register_test("clean")
class Clean(SuiteTest):
    version = "1"

    @dataclass
    class Params:
        pass

    def run(self, ctx: EvalContext) -> dict:
        return {"summary": {"accuracy": accuracy(ctx.model, ctx.x, ctx.y)}}
