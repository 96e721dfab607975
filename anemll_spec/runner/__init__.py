"""The runner: spec -> cases -> stages (build, reference, open, time, close, floor) -> store.

    result = Runner("specs/smoke.yaml", backend="numpy").run()

`plan` decides which variants each case measures (and builds nothing: `anemll-spec plan`
shows it); `case` takes one case through the stages (`stages`: build, reference, open,
close, floor; `timing`: plain, interleaved, concurrent, sustained; `energy`, `verifying`);
`record` moves measurements into the store and reads the store's comparison back;
`bench` is the loop over the cases.
"""

from anemll_spec.runner.bench import BenchResult, Runner
from anemll_spec.runner.measurement import Measurement, Variant

__all__ = ["BenchResult", "Measurement", "Runner", "Variant"]
