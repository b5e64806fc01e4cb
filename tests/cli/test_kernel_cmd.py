"""`tessera kernel run FILE::KERNEL`: output on success and one-line errors on misuse."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tessera.cli.errors import USAGE_ERROR
from tessera.cli.kernel_cmd import MISMATCH, app
from tessera.nki import language as nl
from tessera.nki.kernel_files import (
    KernelFileError,
    compare_outputs,
    count_by_opcode,
    load_kernel_file,
    parse_spec,
    tolerance_for,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kernels"
VECTOR_ADD = EXAMPLES / "vector_add.py"

HEADER = """\
import numpy as np
from tessera.nki.compat import install
install()
import nki
import nki.isa as nisa
import nki.language as nl
"""

ADD_KERNEL = """
@nki.jit
def add(a, b):
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    ta = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
    tb = nl.ndarray(b.shape, b.dtype, buffer=nl.sbuf)
    nisa.dma_copy(ta, a)
    nisa.dma_copy(tb, b)
    nisa.tensor_tensor(ta, ta, tb, op=nl.add)
    nisa.dma_copy(out, ta)
    return out
"""

INPUTS = """
def example_inputs():
    return np.ones((128, 8), np.float32), np.full((128, 8), 2.0, np.float32)
"""


def _invoke(*args: str):  # noqa: ANN202 - click Result
    return CliRunner().invoke(app, ["run", *args])


def _write(tmp_path: Path, body: str, name: str = "kern.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


# ------------------------------------------------------------------ success
def test_run_prints_counts_comparison_and_wall_time() -> None:
    result = _invoke(f"{VECTOR_ADD}::vector_add", "--chip", "trn1")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "vector_add on trn1" in out
    # 256 rows = 2 tiles, each: 2 loads + 1 store on DMA, 1 add on the Vector engine
    assert any(line.split()[-2:] == ["dma_copy", "6"] for line in _rows(out)), out
    assert any(line.split()[-2:] == ["tensor_tensor", "2"] for line in _rows(out)), out
    assert any(line.split() == ["total", "8"] for line in _rows(out)), out
    assert "PASS" in out and "float32" in out
    assert "wall time:" in out and "ms" in out


def _rows(table_text: str) -> list[str]:
    """Table body lines with the box characters removed."""
    return [line.replace("│", " ").strip() for line in table_text.splitlines() if "│" in line]


def test_symbolic_prints_only_the_counts() -> None:
    result = _invoke(f"{EXAMPLES / 'matmul_tutorial.py'}::matmul_tiled", "--symbolic")
    assert result.exit_code == 0, result.output
    # default example: M=256, K=256, N=1024 -> 2 x 2 x 2 = 8 matmuls
    assert any(line.split() == ["nc_matmul", "8"] for line in _rows(result.output))
    assert "PASS" not in result.output and "wall time" not in result.output


def test_symbolic_runs_even_without_a_reference(tmp_path: Path) -> None:
    path = _write(tmp_path, ADD_KERNEL + INPUTS)
    result = _invoke(f"{path}::add", "--symbolic")
    assert result.exit_code == 0, result.output
    assert "tensor_tensor" in result.output


def test_wrong_output_fails_with_exit_code_1(tmp_path: Path) -> None:
    path = _write(tmp_path, ADD_KERNEL + INPUTS + """
def reference(a, b):
    return a - b
""")
    result = _invoke(f"{path}::add")
    assert result.exit_code == MISMATCH, result.output
    assert "FAIL" in result.output and "PASS" not in result.output


def test_default_chip_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", "trn1")
    result = _invoke(f"{VECTOR_ADD}::vector_add")
    assert result.exit_code == 0, result.output
    assert "vector_add on trn1" in result.output


# ------------------------------------------------------------------ errors
def test_missing_file(one_line_error) -> None:
    one_line_error(_invoke("no/such/file.py::k"), "no/such/file.py", "no such file")


def test_missing_kernel_part(one_line_error) -> None:
    one_line_error(_invoke(str(VECTOR_ADD)), "FILE::KERNEL")


def test_empty_kernel_name(one_line_error) -> None:
    one_line_error(_invoke(f"{VECTOR_ADD}::"), "empty")


def test_unknown_kernel_lists_available_ones(one_line_error) -> None:
    result = _invoke(f"{EXAMPLES / 'matmul_tutorial.py'}::matmul_fast")
    one_line_error(result, "matmul_fast", "matmul_tiled", "matmul_hoist_loads",
                           "matmul_block_free_dims", "matmul_block_all_dims")


def test_file_without_example_inputs(tmp_path: Path, one_line_error) -> None:
    path = _write(tmp_path, ADD_KERNEL + "\ndef reference(a, b):\n    return a + b\n")
    one_line_error(_invoke(f"{path}::add"), "example_inputs")


def test_file_without_reference(tmp_path: Path, one_line_error) -> None:
    path = _write(tmp_path, ADD_KERNEL + INPUTS)
    one_line_error(_invoke(f"{path}::add"), "reference")


def test_file_with_a_syntax_error(tmp_path: Path, one_line_error) -> None:
    path = _write(tmp_path, "def broken(:\n    pass\n")
    one_line_error(_invoke(f"{path}::broken"), "syntax error", str(path))


def test_kernel_error_names_the_kernel_line(tmp_path: Path, one_line_error) -> None:
    body = textwrap.dedent("""
    @nki.jit
    def bad(a, b):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        acc = nl.ndarray((128, 8), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(acc, a, b)  # operands straight from HBM: not allowed
        return out
    """) + INPUTS + "\ndef reference(a, b):\n    return a\n"
    path = _write(tmp_path, body)
    line = 1 + path.read_text().splitlines().index(
        "    nisa.nc_matmul(acc, a, b)  # operands straight from HBM: not allowed")
    one_line_error(_invoke(f"{path}::bad"), "[buffer-kind]", f"kern.py:{line}",
                           "nc_matmul")


def test_kernel_assertion_is_reported(tmp_path: Path, one_line_error) -> None:
    body = ADD_KERNEL.replace("    out = ", "    assert a.shape[0] == 64, 'need 64 rows'\n"
                              "    out = ") + INPUTS + "\ndef reference(a, b):\n    return a + b\n"
    path = _write(tmp_path, body)
    one_line_error(_invoke(f"{path}::add"), "need 64 rows")


def test_unknown_chip_is_rejected() -> None:
    result = _invoke(f"{VECTOR_ADD}::vector_add", "--chip", "trn9")
    assert result.exit_code == USAGE_ERROR


# ------------------------------------------------------------------ helpers below the CLI
def test_parse_spec_splits_on_the_last_separator(tmp_path: Path) -> None:
    spec = parse_spec(f"{VECTOR_ADD}::vector_add")
    assert spec.path == VECTOR_ADD and spec.kernel == "vector_add"
    with pytest.raises(KernelFileError):
        parse_spec(f"{tmp_path / 'absent.py'}::k")


def test_load_kernel_file_lists_kernels_in_definition_order() -> None:
    kfile = load_kernel_file(EXAMPLES / "matmul_tutorial.py")
    assert kfile.kernels == kfile.module.KERNELS


def test_tolerance_follows_the_output_precision() -> None:
    assert tolerance_for(nl.float32) == pytest.approx(1e-4)
    assert tolerance_for(nl.bfloat16) == pytest.approx(2.5 / 128)
    assert tolerance_for(nl.float16) < tolerance_for(nl.bfloat16)
    assert tolerance_for(nl.int32) == 0.0


def test_compare_outputs_is_relative_to_the_largest_reference_value() -> None:
    ref = np.array([[100.0, 0.001]], np.float32)
    near = compare_outputs(ref + np.float32(0.005), ref)  # tiny element off by 5x
    assert near.max_abs_err == pytest.approx(0.005, rel=1e-3)
    assert near.max_rel_err == pytest.approx(5e-5, rel=1e-3) and near.passed
    far = compare_outputs(ref * np.float32(1.01), ref)
    assert not far.passed
    poisoned = ref.copy()
    poisoned[0, 1] = np.nan
    assert not compare_outputs(poisoned, ref).passed
    with pytest.raises(KernelFileError, match="shape"):
        compare_outputs(ref.T, ref)


def test_count_by_opcode_sorts_by_count() -> None:
    from tessera import nki

    kfile = load_kernel_file(EXAMPLES / "softmax.py")
    result = nki.trace(kfile.kernel("softmax_rows"))(*kfile.module.example_inputs())
    counts = count_by_opcode(result.instructions)
    assert sum(c.count for c in counts) == len(result.instructions)
    assert [c.count for c in counts] == sorted((c.count for c in counts), reverse=True)
    assert {(c.engine, c.opcode) for c in counts} >= {("scalar", "activation"),
                                                      ("vector", "tensor_reduce")}


def test_warm_up_compiles_the_timing_model() -> None:
    result = CliRunner().invoke(app, ["warm-up"])
    assert result.exit_code == 0, result.output
    assert "preparing the timing model" in result.output
    assert "timing model ready" in result.output
