"""Write a trained design out as plain, readable PyTorch code (the bundle's ``model.py``).

The generated file needs only ``torch`` and ``safetensors``: an ``nn.Sequential`` with every size
written as a literal, one commented line per layer, and a ``load(path="model.safetensors")`` that
rebuilds the network and loads the exported weights (a text model that uses the padding mask is a
``MaskedSequential``, copied like our other classes). It follows the same plan as
``builder.model.build_model`` (the rows of ``infer_shapes``), so the state-dict keys and the outputs
are identical.

How each layer's constructor arguments are found is data-driven: the layer is built for the shape
it receives (on the ``meta`` device, so no memory is spent), and each argument of its class's
``__init__`` is read back from the module's attribute of the same name. Only arguments that differ
from torch's defaults are written, so the code reads like a person wrote it. A layer type whose
module does not keep its arguments as attributes registers its own function with
``register_arguments``. Every line is checked by rebuilding the layer from the written arguments.
Classes of our own (``builder/modules.py``) are copied into the file as source, so it never imports
``builder``.
"""

from __future__ import annotations

import inspect
import textwrap
import typing
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from builder.errors import BundleError
from builder.layers import LAYERS, Shape, describe_shape, input_layers, padding_mask_layers
from builder.modules import InputSequential, MaskedSequential
from builder.shapes import check_shapes
from builder.spec import ModelSpec

# Constructor arguments that only say where or in which precision to allocate: never written.
_PLACEMENT_ARGS = {"device", "dtype"}

ArgumentsFn = Callable[[Shape, dict[str, Any], nn.Module], dict[str, Any]]
_ARGUMENT_FUNCTIONS: dict[str, ArgumentsFn] = {}


def register_arguments(type_name: str) -> Callable[[ArgumentsFn], ArgumentsFn]:
    """Register how to write the constructor arguments of layer type ``type_name``.

    Use it for a module that does not keep its constructor arguments as attributes. The function
    gets the incoming shape, the layer's complete parameters and the built module, and returns the
    keyword arguments (in order) that rebuild it.
    """

    def decorate(fn: ArgumentsFn) -> ArgumentsFn:
        _ARGUMENT_FUNCTIONS[type_name] = fn
        return fn

    return decorate


def constructor_arguments(type_name: str, in_shape: Shape, params: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """The class and the keyword arguments that rebuild one layer for ``in_shape``.

    Args:
        type_name: a registered layer type.
        in_shape: per-sample shape the layer receives.
        params: the layer's complete parameters.

    Returns:
        ``(cls, kwargs)`` with only the arguments that differ from the class's defaults, plus
        every required one.

    Raises:
        BundleError: the arguments cannot be found, or do not rebuild the same layer.
    """
    with torch.device("meta"):
        module = LAYERS.get(type_name).make(in_shape, params)
    cls = type(module)
    if type_name in _ARGUMENT_FUNCTIONS:
        kwargs = _ARGUMENT_FUNCTIONS[type_name](in_shape, params, module)
    else:
        kwargs = _arguments_from_attributes(module, params)
    _check_rebuilds(type_name, module, cls, kwargs)
    return cls, kwargs


def _arguments_from_attributes(module: nn.Module, params: dict[str, Any]) -> dict[str, Any]:
    """Read each ``__init__`` argument back from the module's attribute of the same name."""
    signature = inspect.signature(type(module).__init__)
    kwargs: dict[str, Any] = {}
    for name, arg in list(signature.parameters.items())[1:]:  # [0] is self
        if name in _PLACEMENT_ARGS or arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD):
            continue
        if hasattr(module, name):
            value = getattr(module, name)
            if isinstance(value, torch.Tensor) or (value is None and isinstance(arg.default, bool)):
                # A flag such as ``bias=True`` is stored as the parameter it creates (or None).
                value = value is not None
        elif name in params:
            value = params[name]
        elif arg.default is not arg.empty:
            continue
        else:
            raise BundleError(
                f"Cannot write {type(module).__name__} as code: its setting '{name}' is not kept on "
                "the layer. Register its arguments in builder/codegen.py."
            )
        if isinstance(value, tuple | list) and len(value) > 0 and len(set(value)) == 1 and _takes_int(arg):
            value = value[0]  # kernel_size=(3, 3) reads better as kernel_size=3
        elif isinstance(value, tuple) and len(value) == 1 and name.endswith("shape"):
            value = value[0]  # LayerNorm((64,)) reads better as LayerNorm(64)
        if arg.default is not arg.empty and _same(value, arg.default):
            continue
        kwargs[name] = value
    return kwargs


def _takes_int(arg: inspect.Parameter) -> bool:
    """Whether an argument's default (or annotation) shows that one int stands for all dims."""
    if isinstance(arg.default, int) and not isinstance(arg.default, bool):
        return True
    # torch annotates sizes as ``int | tuple[int, ...]`` (``typing.Union[int, tuple[int, int]]``).
    return "_size_" in str(arg.annotation) or int in typing.get_args(arg.annotation)


def _same(value: Any, default: Any) -> bool:
    try:
        return type(value) is type(default) and bool(value == default)
    except (TypeError, ValueError, RuntimeError):
        return False


def _check_rebuilds(type_name: str, module: nn.Module, cls: type, kwargs: dict[str, Any]) -> None:
    """Rebuild the layer from the written arguments and compare it with the original."""
    with torch.device("meta"):
        rebuilt = cls(**kwargs)
    same_repr = repr(rebuilt) == repr(module)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    rebuilt_shapes = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if not same_repr or shapes != rebuilt_shapes:
        raise BundleError(
            f"Cannot write {type_name} as code: the arguments found ({kwargs}) rebuild a different "
            "layer. Register its arguments in builder/codegen.py."
        )


def _literal(value: Any) -> str:
    """A Python literal for an argument value (repr is valid code for the types layers take)."""
    if isinstance(value, float) and not value == value or value in (float("inf"), float("-inf")):
        return f"float({str(value)!r})"  # nan and inf have no literal
    return repr(value)


def _call_text(cls: type, kwargs: dict[str, Any]) -> str:
    """``nn.Linear(12, 64)``: required leading arguments by position, the rest by keyword."""
    signature = inspect.signature(cls.__init__)
    positional: list[str] = []
    keywords: list[str] = []
    required = [
        name for name, arg in list(signature.parameters.items())[1:]
        if arg.default is arg.empty and arg.kind in (arg.POSITIONAL_ONLY, arg.POSITIONAL_OR_KEYWORD)
    ]
    for name, value in kwargs.items():
        if name in required and len(positional) == required.index(name) and not keywords:
            positional.append(_literal(value))
        else:
            keywords.append(f"{name}={_literal(value)}")
    return f"{_class_ref(cls)}({', '.join(positional + keywords)})"


def _class_ref(cls: type) -> str:
    if getattr(nn, cls.__name__, None) is cls:
        return f"nn.{cls.__name__}"
    return cls.__name__  # our own module: its source is copied into the file


def _own_class_sources(classes: list[type]) -> list[str]:
    """Source of every non-torch class used, so the file never imports ``builder``."""
    sources = []
    seen: set[type] = set()
    for cls in classes:
        if cls in seen or getattr(nn, cls.__name__, None) is cls:
            continue
        seen.add(cls)
        try:
            sources.append(textwrap.dedent(inspect.getsource(cls)).rstrip())
        except (OSError, TypeError):
            raise BundleError(f"Cannot write {cls.__name__} as code: its source is not available.") from None
    return sources


def model_source(spec: ModelSpec, input_shape: Shape, n_outputs: int, *, about: str | None = None) -> str:
    """Return the text of a standalone ``model.py`` that rebuilds the network.

    Args:
        spec: the design (hidden layers; the head is added, as ``build_model`` does).
        input_shape: per-sample input shape after preprocessing, e.g. ``(30,)``.
        n_outputs: values the head produces.
        about: one line for the file's docstring, e.g. "Predicts 'churn' (yes/no)."

    Returns:
        Python source needing only torch and safetensors, with ``build()``, ``load(path)``,
        ``INPUT_SHAPE`` and ``N_OUTPUTS``.

    Raises:
        SpecError / ShapeError: the design does not fit the shape.
        BundleError: a layer cannot be written as code.
    """
    report = check_shapes(spec, input_shape, n_outputs)
    calls: list[str] = []
    comments: list[str] = []
    classes: list[type] = []
    for row in report.rows:
        cls, kwargs = constructor_arguments(row.type, row.input_shape, row.params)
        classes.append(cls)
        calls.append(_call_text(cls, kwargs) + ",")
        where = "output layer" if row.locked else f"layer {row.index + 1}"
        comments.append(f"# {where}: {describe_shape(row.input_shape)} -> {describe_shape(row.output_shape)}")
    # Same container as builder.model.sequential, so outputs and state-dict keys are identical.
    mask_layers = padding_mask_layers([row.type for row in report.rows])
    container = "nn.Sequential"
    if mask_layers:
        container = MaskedSequential.__name__
        classes.append(MaskedSequential)
        calls.append(f"mask_layers={mask_layers!r},")
        numbers = ", ".join(str(i + 1) for i in mask_layers)
        which = f"layers {numbers} also get" if len(mask_layers) > 1 else f"layer {numbers} also gets"
        comments.append(f"# {which} the padding mask (token id 0)")
    side_paths = input_layers([row.type for row in report.rows])
    if side_paths and not mask_layers:
        container = InputSequential.__name__
        classes.append(InputSequential)
        calls.append(f"input_layers={side_paths!r},")
        numbers = ", ".join(str(i + 1) for i in side_paths)
        comments.append(f"# layer {numbers} also gets the model's input (a side path)")
    width = max(len(c) for c in calls)
    body = "\n".join(f"        {call.ljust(width)}  {comment}" for call, comment in zip(calls, comments, strict=True))
    own = _own_class_sources(classes)
    own_text = ("\n\n\n".join(own) + "\n\n\n") if own else ""
    total = report.total_params
    headline = about or "A network made with the visual model builder."
    return _TEMPLATE.format(
        headline=headline,
        input_text=describe_shape(tuple(input_shape)),
        n_outputs=n_outputs,
        n_params=f"{total:,}",
        input_shape=repr(tuple(int(d) for d in input_shape)),
        own_classes=own_text,
        # Copied classes may use math; plain torch layers never do.
        extra_imports="import math\n" if own else "",
        container=container,
        body=body,
    )


_TEMPLATE = '''"""{headline}

Written out by the visual model builder as plain PyTorch code; it needs only torch and safetensors.

Input: float32 tensor (batch, {input_text}), i.e. rows after preprocess.py's Preprocessor.transform.
Output: (batch, {n_outputs}) raw values; preprocess.py's Preprocessor.decode_outputs turns them into
predictions (labels and probabilities, or numbers in the target's units).
Trainable parameters: {n_params}.

Use:
    from model import load
    model = load("model.safetensors")   # eval mode
    outputs = model(torch.from_numpy(X))
"""

from __future__ import annotations

{extra_imports}from pathlib import Path

import torch
from torch import nn
from safetensors.torch import load_file

INPUT_SHAPE = {input_shape}  # one sample after preprocessing
N_OUTPUTS = {n_outputs}


{own_classes}def build() -> nn.Sequential:
    """The network with fresh weights; its layer numbers match the keys in model.safetensors."""
    return {container}(
{body}
    )


def load(path: str | Path = "model.safetensors") -> nn.Sequential:
    """Build the network and load the trained weights, ready to predict (eval mode).

    A relative path that does not exist here is looked up next to this file.
    """
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parent / path
    model = build()
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


if __name__ == "__main__":
    import sys

    net = load()
    with torch.inference_mode():
        out = net(torch.zeros(2, *INPUT_SHAPE))
    sys.stdout.write(f"{{net}}\\noutput shape for 2 rows: {{tuple(out.shape)}}\\n")
'''


@register_arguments("TransformerEncoderLayer")
def _transformer_arguments(in_shape: Shape, params: dict[str, Any], module: nn.Module) -> dict[str, Any]:
    """``nn.TransformerEncoderLayer`` keeps neither d_model nor its settings as attributes."""
    kwargs: dict[str, Any] = {"d_model": in_shape[-1], "nhead": params["nhead"],
                              "dim_feedforward": params["dim_feedforward"], "dropout": params["dropout"]}
    if params["activation"] != "relu":
        kwargs["activation"] = params["activation"]
    kwargs["batch_first"] = True  # every sequence in the builder is (batch, time, features)
    if params["norm_first"]:
        kwargs["norm_first"] = True
    return kwargs
