"""The one reader of saved Core ML models: `.mlpackage`, `.mlmodel` and compiled `.mlmodelc`.

    from anemll_spec.mlmodel import open_model
    m = open_model(path)
    m.io()              # inputs / outputs / states (ModelIO of TensorSpec)
    m.program()         # the ML Program as the IR (ir.Function, ir.Op, ...)

Modules, bottom up: `dtypes` (the one table of data types), `limits` (sizes checked before
allocating), `files` (where the parts lie; no path may leave the model), `proto`
(coremltools' protobuf classes without importing coremltools), `blob` (the weight-file
reader), `ir` (the program IR), `protoread` / `miltext` (protobuf and model.mil text ->
IR; `miltokens` splits the text), `features` (ModelIO), `model` (`open_model`),
`inspect` (ops, FLOPs, weight bytes, compression). Reading never imports coremltools'
converters (or torch); writing models is `anemll_spec.build`'s job.
"""

from anemll_spec.mlmodel.features import ModelIO, TensorSpec
from anemll_spec.mlmodel.model import SavedModel, open_model

__all__ = ["ModelIO", "SavedModel", "TensorSpec", "open_model"]
