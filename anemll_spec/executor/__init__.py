"""Reference executor: runs a saved Core ML ML Program (.mlpackage, .mlmodelc) without Core ML.

    from anemll_spec.executor import load
    prog = load("model.mlpackage")            # fp16=False: fp16 tensors computed in fp32
    prog.inputs, prog.outputs, prog.states    # name -> TensorSpec(name, shape, dtype)
    state = prog.make_state()                 # zeros; predict() updates it in place
    out = prog.predict({"x": x}, state=state) # name -> np.ndarray (a classifier: str/int, dict)

What it reads: the program as `anemll_spec.mlmodel` parses it (the protobuf of an
.mlpackage, found through Manifest.json, or the model.mil text of a compiled .mlmodelc,
whose metadata.json must agree with it) and the MILBlob weight files it references,
memory-mapped. Compressed weights (constexpr_* ops, iOS16 and iOS18 forms, sparse and
joint ones) are decoded once, at load. Every declared size is checked before anything is
allocated (`mlmodel.limits`).

Numerics: by default every float tensor is computed in float32, whatever its declared
precision; values cross into declared precision only where the program stores them:
inputs are rounded to their declared dtype, `cast` to fp16 rounds, and states keep their
declared dtype (an fp16 KV cache holds fp16). With `fp16=True`, every float op output and
every float constant is additionally rounded to fp16 (fp16 range: overflow gives inf), which
mimics fp16 execution. Float outputs are returned as float32 (float16 with fp16=True).

Inputs: missing, unknown, mis-shaped or mis-typed inputs raise `InputError`. A float input
accepts any float dtype (Core ML accepts float32 for fp16 inputs) and is rounded to the
declared precision; an integer input accepts any integer dtype whose values fit. A stateful
program called without a state runs on a fresh zero state.

Structure (parse -> lower -> prepare -> run):
- `mlmodel` turns the program into IR records (`mlmodel.ir`: Function, Op with its type,
  name, position, arguments resolved to variable names or constants, declared output
  types, and nested blocks for control flow).
- `load(..., passes=[...])` applies lowering passes `Function -> Function` before
  preparation; `simplify.simplify` lowers 1x1 convs/linears to matmuls, merges parallel
  matmuls over one input into one, and drops dead (compressed) constants.
- `Program` evaluates const/constexpr ops in numpy, then calls each op's kernel factory
  (`kernels/`, registered by op type) once; a factory precomputes from constants (a 1x1
  conv's weight becomes a contiguous (out, in) float matrix) and returns `run(env)`.
  An op type without a kernel is an `InputError` naming the type, the op and its index.
- `predict` runs the prepared steps in order, enforcing each output's declared dtype and
  static shape, and frees intermediates after their last use. `cond` and `while_loop` run
  their nested blocks, prepared once like the function body (`control.py`).

Array library seam: kernels touch runtime tensors only through `xp`, an object with the
primitives listed in `arrays.py` (elementwise math, reductions, reshape/permute/getitem/
setitem, take, matmul, conv, astype, asarray/to_numpy, round_to_fp16, float_dtype).
`arrays.NumpyOps` is the reference; a torch implementation of the same names (fp16 or
fp32, CUDA/MPS/CPU) plugs in with `load(path, xp=TorchOps(...))` and runs the same program;
`torch_runner.load_torch` does that with the simplifications and CUDA-graph replay
(`torch_runner` imports torch: import it only where torch is wanted).
Kernels also use Python operators (+, -, *, /, comparisons) on tensors, which numpy arrays
and torch tensors both implement.
"""

from anemll_spec.executor.program import ExecutionError, Program, load
from anemll_spec.executor.state import State
from anemll_spec.mlmodel.features import TensorSpec

__all__ = ["ExecutionError", "Program", "State", "TensorSpec", "load"]
