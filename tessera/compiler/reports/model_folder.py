"""All the reports of a compiled model in one folder: `write_model_report(compiled, dir)`.

    paths = write_model_report(compiled, "reports/tiny-llama")
    paths["json"], paths["png"], paths["trace"]  # profile.json, layers.png, trace.json

The inputs recorded are the compiled graph's user inputs (name, shape, dtype); the settings
say whether it was compiled symbolically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tessera.compiler.api import CompiledModel
from tessera.compiler.graph import ValueRole
from tessera.compiler.reports.model_json import write_model_json
from tessera.compiler.reports.model_trace import write_model_trace

FILES = {"json": "profile.json", "png": "layers.png", "trace": "trace.json"}


def graph_inputs(compiled: CompiledModel) -> dict[str, object]:
    """The compiled model's user inputs: name -> {"shape", "dtype"}."""
    return {v.name: {"shape": list(v.shape), "dtype": v.dtype}
            for v in compiled.graph.inputs if v.role is ValueRole.USER}


def write_model_report(compiled: CompiledModel, directory: Path | str, *,
                       model: str | None = None,
                       settings: Mapping[str, object] | None = None) -> dict[str, Path]:
    """Write profile.json, layers.png and trace.json of `compiled` into `directory`
    (created with its parents if needed); return their paths by kind (json, png, trace).

    `model` names the model in the reports; `settings` adds compile settings to record
    (`symbolic` is always recorded).
    """
    from tessera.compiler.reports.model_png import write_model_png  # matplotlib: only when drawing

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"model": model, "inputs": graph_inputs(compiled),
            "settings": {"symbolic": compiled.symbolic, **(settings or {})}}
    profile = compiled.profile
    return {
        "json": write_model_json(profile, folder / FILES["json"], **meta),
        "png": write_model_png(profile, folder / FILES["png"], title=model),
        "trace": write_model_trace(profile, folder / FILES["trace"], **meta),
    }
