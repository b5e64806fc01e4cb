"""`tessera compile`: compile a PyTorch model for one NeuronCore and print its predicted time.

Three ways to name the model (exactly one):

* `MODULE:FACTORY` (a module name importable from the current folder, or a .py file): the
  factory is called with no arguments and returns a `torch.nn.Module`; `--inputs
  NAME=AxB[:dtype]` (repeatable, in the order of `forward`'s arguments) gives the example
  inputs: zeros for integer and bool dtypes (valid token ids), standard normal values
  (seed 0) for floating ones; the dtype defaults to float32.
* `--preset NAME` (`tessera.models.PRESETS`) or `--hf-config config.json` (Llama, GPT-2,
  BERT): the in-tree reference model with seeded random weights, on `input_ids` [batch,
  seq] int64 (zeros). Configs without a reference model (MoE, MLA, sliding window) are a
  one-line error.

`--symbolic` builds the model on the meta device (no weights: big models in seconds) and
predicts only. `--report DIR` writes profile.json, layers.png and trace.json there.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer

from tessera.cli.errors import debug_enabled, fail, guard
from tessera.cli.options import CHIP_HELP, RayOption, WorkersOption, batch_executor, chip_preset

if TYPE_CHECKING:
    from tessera.cost.batch import BatchStep
    from tessera.kernels.tune import TuneStep

FIDELITIES = ("simulated", "roofline")
FALLBACKS = ("error", "host")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "bool")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
# random float32 weights larger than this need --symbolic (a 7-8B model would take 32 GB)
MAX_WEIGHT_BYTES = 4 << 30


def _stage(message: str) -> None:
    """A progress line on stderr, shown only on a terminal (scripts and pipes get the
    summary alone, and errors stay one line)."""
    if sys.stderr.isatty():
        typer.echo(message, err=True)


def _choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    text = value.strip().lower()
    if text not in choices:
        raise fail(f"{option} {value!r}: choose one of {', '.join(choices)}")
    return text


def _dtype_name(option: str, text: str) -> str:
    name = text.strip().lower().removeprefix("torch.")
    if name not in INT_DTYPES + FLOAT_DTYPES:
        raise fail(f"{option} {text!r}: not a dtype; choose one of "
                   f"{', '.join(FLOAT_DTYPES + INT_DTYPES)}")
    return name


def parse_input(text: str) -> tuple[str, tuple[int, ...], str]:
    """`NAME=AxB[:dtype]` -> (name, shape, dtype name; float32 when left out)."""
    name, sep, rest = text.partition("=")
    dims, _, dtype = rest.partition(":")
    try:
        shape = tuple(int(d) for d in dims.strip().lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name.strip().isidentifier() or not shape or min(shape) < 1:
        raise fail(f"--inputs {text!r}: expected NAME=AxB[:dtype] with positive sizes, e.g. "
                   "--inputs x=1x128:int64")
    return name.strip(), shape, _dtype_name(f"--inputs {text!r}: dtype", dtype or "float32")


def make_inputs(specs: list[tuple[str, tuple[int, ...], str]]) -> tuple[object, ...]:
    """Zeros for integer and bool dtypes, standard normal values (seed 0) for floats."""
    import torch

    generator = torch.Generator().manual_seed(0)
    out = []
    for _, shape, dtype in specs:
        dt = getattr(torch, dtype)
        if dt.is_floating_point:
            out.append(torch.randn(shape, generator=generator).to(dt))
        else:
            out.append(torch.zeros(shape, dtype=dt))
    return tuple(out)


def _load_module(target: str) -> ModuleType:
    """A module by file path (`models/mlp.py`) or by import name (`mypkg.models`)."""
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise fail(f"model file {target}: does not exist")
        spec = importlib.util.spec_from_file_location(f"_tessera_model_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise fail(f"model file {target}: cannot be loaded as Python")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except SyntaxError as err:
            raise fail(f"{path.name}:{err.lineno}: SyntaxError: {err.msg}") from None
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m`: modules of the current folder
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as err:
        if err.name and target.startswith(err.name):  # the module itself, not an import in it
            raise fail(f"module {target!r} not found (give an importable module name or a "
                       ".py file)") from None
        raise
    except SyntaxError as err:
        raise fail(f"{Path(err.filename or target).name}:{err.lineno}: SyntaxError: "
                   f"{err.msg}") from None


def parse_target(spec: str) -> tuple[str, str]:
    """`MODULE:FACTORY` -> (module name or file, factory name)."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise fail(f"{spec!r}: expected MODULE:FACTORY, e.g. models.py:make_model or "
                   "mypkg.models:make_model")
    return target, name


def load_factory(spec: str, symbolic: bool) -> object:
    """Call FACTORY of MODULE (under the meta device when `symbolic`); check the result."""
    import torch

    target, name = parse_target(spec)
    module = _load_module(target)
    factory = getattr(module, name, None)
    if factory is None:
        raise fail(f"{target} has no {name!r}")
    if not callable(factory):
        raise fail(f"{target}:{name} is not callable (an object of type "
                   f"{type(factory).__name__})")
    if symbolic:
        with torch.device("meta"):
            model = factory()
    else:
        model = factory()
    if not isinstance(model, torch.nn.Module):
        raise fail(f"{target}:{name}() returned an object of type {type(model).__name__}, "
                   "not a torch.nn.Module")
    return model


def model_config(preset: str | None, hf_config: Path | None) -> tuple[str, object]:
    """(name, ModelConfig) of `--preset` or `--hf-config`, one a reference model exists for."""
    from tessera.models import PRESETS, ModelConfigError, check_buildable, from_hf_config

    if preset is not None:
        if preset not in PRESETS:
            raise fail(f"--preset {preset!r} is not a model preset; choose one of: "
                       f"{', '.join(PRESETS)}")
        try:
            # the zoo also holds MoE, MLA and sliding-window models the planner reads
            check_buildable(PRESETS[preset])
        except ModelConfigError as err:
            raise fail(f"--preset {preset}: {err}") from None
        return preset, PRESETS[preset]
    assert hf_config is not None
    if not hf_config.is_file():
        raise fail(f"--hf-config {hf_config}: no such file")
    try:
        config = from_hf_config(hf_config)
        check_buildable(config)
    except ModelConfigError as err:
        raise fail(f"--hf-config {hf_config}: {err}") from None
    # models/SmolLM2/config.json is "SmolLM2"; my-llama.json is "my-llama"
    folder = hf_config.resolve().parent.name
    return (folder if hf_config.stem == "config" and folder else hf_config.stem), config


def build_reference(config: object, symbolic: bool) -> object:
    """The reference model of `config`: on the meta device when `symbolic`, else with
    seeded random float32 weights (refused above `MAX_WEIGHT_BYTES`)."""
    from tessera.models import build_model

    if not symbolic:
        weight_bytes = 4 * config.num_parameters()  # type: ignore[attr-defined]
        if weight_bytes > MAX_WEIGHT_BYTES:
            raise fail(f"random float32 weights of this model take {weight_bytes / 1e9:.1f} "
                       "GB; pass --symbolic to predict its time without weights")
    return build_model(config, meta=symbolic)  # type: ignore[arg-type]


def _report_dir(path: Path) -> None:
    """Create the reports' folder now, so a path that cannot hold them is a one-line error
    before the compile, not after it."""
    from tessera.cli.paths import check_writable
    from tessera.compiler.reports.model_folder import FILES

    if path.exists() and not path.is_dir():
        raise fail(f"--report {path}: is a file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise fail(f"--report {path}: cannot create the folder ({err.strerror})") from None
    for name in FILES.values():
        check_writable(path / name, "--report")


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """Keep torch's own error log (a fake-tensor traceback before export fails) off the
    terminal: the CompileError that follows names the problem in one line."""
    logger = logging.getLogger("torch._subclasses.fake_tensor")
    level = logger.level
    if not debug_enabled():
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class _TuningProgress:
    """On a terminal, one line per kernel shape being tuned (the first SIMULATED compile of
    a large model tunes for minutes), rewritten in place as configurations finish."""

    def __init__(self) -> None:
        self.shapes = 0

    def __call__(self, step: TuneStep | BatchStep) -> None:
        if hasattr(step, "total"):  # a BatchStep: shapes tuned side by side in processes
            self.shapes = step.done
            typer.echo(f"\r  tuning {step.total} kernel shapes in parallel: {step.done} "
                       f"done (last {step.request.op})   ", err=True, nl=False)
            return
        if step.evaluated == 1:
            self.shapes += 1
        typer.echo(f"\r  tuning kernel shape {self.shapes}: {step.kernel}, configuration "
                   f"{step.evaluated}/{step.planned}   ", err=True, nl=False)

    def done(self) -> None:
        if self.shapes:
            typer.echo(f"\r  tuned {self.shapes} kernel shape(s); cached for the next "
                       "compile" + " " * 20, err=True)


def _run_check(compiled: object, model: object, args: tuple[object, ...]) -> str:
    """Run the compiled model on the simulated device (library kernels through
    tessera.nki) and eagerly on the CPU; say how far apart their outputs are."""
    import torch

    _stage("running it on the simulated device and eagerly ...")
    start = time.perf_counter()
    got = compiled(*args)  # type: ignore[operator]
    seconds = time.perf_counter() - start
    with torch.no_grad():
        want = model(*args)  # type: ignore[operator]
    pairs = list(zip(_tensors(got), _tensors(want), strict=False))
    diff = max(((g.float() - w.float()).abs().max().item() for g, w in pairs if
                g.shape == w.shape), default=float("nan"))
    return (f"ran on the simulated device in {seconds:.2f} s: max |compiled - eager| = "
            f"{diff:.2e} over {len(pairs)} output(s)")


def _tensors(value: object) -> list[object]:
    """The tensors of a model output (a tensor, a tuple/list, or a dataclass-like output
    with tensor fields such as a transformers ModelOutput), in order."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    if hasattr(value, "to_tuple"):
        return _tensors(value.to_tuple())
    return []


@guard
def compile_model(
    spec: Annotated[str | None, typer.Argument(
        metavar="[MODULE:FACTORY]",
        help="A module name or .py file and a function in it that returns the "
             "torch.nn.Module, e.g. models.py:make_model. Or use --preset / --hf-config.")
    ] = None,
    inputs: Annotated[list[str] | None, typer.Option(
        "--inputs", metavar="NAME=AxB[:dtype]",
        help="An example input of MODULE:FACTORY, in forward's order: zeros for int/bool "
             "dtypes, standard normal for floats (default float32), e.g. "
             "x=1x128:int64. Repeatable.")] = None,
    preset: Annotated[str | None, typer.Option(
        metavar="NAME", help="A reference model preset: tiny-llama, llama3-8b, gpt2, "
                             "bert-base, ... (tessera.models.PRESETS).")] = None,
    hf_config: Annotated[Path | None, typer.Option(
        "--hf-config", metavar="CONFIG.JSON",
        help="A Hugging Face config.json (llama, gpt2, bert): the reference model with "
             "random weights.")] = None,
    seq: Annotated[int, typer.Option(
        help="Sequence length of input_ids (--preset, --hf-config).")] = 128,
    batch: Annotated[int, typer.Option(
        help="Batch size of input_ids (--preset, --hf-config).")] = 1,
    chip: Annotated[str | None, typer.Option(metavar="CHIP", help=CHIP_HELP)] = None,
    symbolic: Annotated[bool, typer.Option(
        "--symbolic", help="Build the model on the meta device (no weights) and predict "
                           "only: large models in seconds.")] = False,
    dtype: Annotated[str | None, typer.Option(
        metavar="DTYPE", help="Cast the model and its floating inputs first, e.g. "
                              "bfloat16.")] = None,
    fidelity: Annotated[str, typer.Option(
        metavar="FIDELITY", help="simulated (each library kernel tuned and scheduled; "
                                 "cached on disk) or roofline (formulas: fast).")
    ] = "simulated",
    fallback: Annotated[str, typer.Option(
        metavar="MODE", help="error: list the ops without a lowering; host: run them on "
                             "the host and price them as host ops.")] = "error",
    report_dir: Annotated[Path | None, typer.Option(
        "--report", metavar="DIR",
        help="Write profile.json, layers.png and trace.json (Perfetto) into DIR.")] = None,
    workers: WorkersOption = None,
    ray: RayOption = None,
) -> None:
    """Compile a PyTorch model for one NeuronCore and print its predicted time per layer."""
    sources = [s for s in (spec, preset, hf_config) if s is not None]
    if len(sources) != 1:
        raise fail("name the model once: MODULE:FACTORY, --preset NAME or "
                   "--hf-config CONFIG.JSON")
    chip_name = chip_preset(chip)
    fid = _choice("--fidelity", fidelity, FIDELITIES)
    fb = _choice("--fallback", fallback, FALLBACKS)
    cast = _dtype_name("--dtype", dtype) if dtype is not None else None
    if spec is not None:
        parse_target(spec)  # a typo fails before torch is imported
    if spec is None and inputs:
        raise fail("--inputs is for MODULE:FACTORY; --preset and --hf-config take "
                   "--seq and --batch")
    if spec is not None and not inputs:
        raise fail("MODULE:FACTORY needs its example inputs: --inputs NAME=AxB[:dtype], "
                   "e.g. --inputs x=1x128:int64")
    if seq < 1 or batch < 1:
        raise fail(f"--seq {seq} --batch {batch}: both must be positive")
    parsed = [parse_input(item) for item in inputs or []]
    executor = batch_executor(workers, ray)
    if report_dir is not None:
        _report_dir(report_dir)
    _stage("importing torch and the compiler ...")
    import torch

    import tessera
    from tessera.compiler import CompileError

    _stage("building the model ...")
    if spec is not None:
        name = spec
        model = load_factory(spec, symbolic)
        args = make_inputs(parsed)
    else:
        name, config = model_config(preset, hf_config)
        limit = config.max_position_embeddings  # type: ignore[attr-defined]
        if seq > limit:
            raise fail(f"--seq {seq}: this model takes at most {limit} tokens "
                       "(max_position_embeddings)")
        model = build_reference(config, symbolic)
        args = (torch.zeros(batch, seq, dtype=torch.int64),)
    _stage(f"compiling for {chip_name} (torch.export, passes, lowering, {fid} pricing) ...")
    start = time.perf_counter()
    progress = _TuningProgress() if sys.stderr.isatty() else None
    try:
        with _quiet_torch():
            compiled = tessera.compile(model, args, chip=chip_name, dtype=cast,
                                       symbolic=symbolic, fallback=fb, fidelity=fid,
                                       progress=progress, executor=executor)
    except CompileError as err:
        raise fail(" ".join(str(err).split())) from None
    finally:
        if progress is not None:
            progress.done()
    seconds = time.perf_counter() - start
    mode = "symbolic" if symbolic else "with weights"
    shapes = ", ".join("x".join(map(str, a.shape)) + f" {str(a.dtype).removeprefix('torch.')}"
                       for a in args)
    typer.echo(f"compiled {name} ({shapes}; {mode}) for {chip_name} in {seconds:.1f} s")
    if not symbolic:
        typer.echo(_run_check(compiled, model, args))
    typer.echo(compiled.profile.format())
    if report_dir is not None:
        from tessera.report import write_model_report

        settings = {"dtype": cast, "fallback": fb}
        paths = write_model_report(compiled, report_dir, model=name, settings=settings)
        typer.echo(f"wrote profile JSON: {paths['json']}")
        typer.echo(f"wrote per-layer PNG: {paths['png']}")
        typer.echo(f"wrote trace (open in ui.perfetto.dev): {paths['trace']}")
