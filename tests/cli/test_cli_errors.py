"""Every way a user can get a command wrong ends in one line and a non-zero exit.

One test per bad input of issue 12: the exit status, a single `error:` line that names the
problem (and, for exceptions in the user's own code, the file:line), and no traceback.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli.app import app
from tessera.cli.errors import USAGE_ERROR
from tessera.cli.kernel_cmd import MISMATCH

ROOT = Path(__file__).resolve().parents[2]
VECTOR_ADD = str(ROOT / "examples" / "kernels" / "vector_add.py") + "::vector_add"
runner = CliRunner()

USER_FILE = textwrap.dedent('''\
    import numpy as np
    from tessera import nki
    import tessera.nki.isa as nisa
    import tessera.nki.language as nl


    @nki.jit
    def boom(a):
        return 1 / 0


    def plain(a):
        return a


    @nki.jit
    def no_return(a):
        t = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(t, a)


    @nki.jit
    def too_big(a):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        t1 = nl.ndarray((128, 30000), nl.float32, buffer=nl.sbuf)
        t2 = nl.ndarray((128, 30000), nl.float32, buffer=nl.sbuf)
        nisa.memset(t1, 0.0)
        nisa.memset(t2, 0.0)
        nisa.tensor_tensor(t1, t1, t2, op=nl.add)
        nisa.dma_copy(out, t1[:, 0:64])
        return out


    @nki.jit
    def uninitialised(a):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(out, t)
        return out


    def example_inputs():
        return (np.ones((128, 64), np.float32),)


    def reference(a):
        return a


    def example_inputs_bad_inputs():
        return {}["missing"]


    @nki.jit
    def bad_inputs(a):
        return a
''')


def _line_of(text: str) -> int:
    return USER_FILE.splitlines().index(text) + 1


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "mine.py"
    path.write_text(USER_FILE)
    return path


def _one_error_line(result, code: int = USAGE_ERROR) -> str:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert "Traceback" not in result.output, result.output
    assert lines[-1].startswith("error: "), result.output
    return lines[-1]


def test_an_exception_in_the_kernel_body_names_the_users_line(user_file: Path) -> None:
    line = _one_error_line(runner.invoke(app, ["kernel", "run", f"{user_file}::boom"]))
    assert line == (f"error: mine.py:{_line_of('    return 1 / 0')} in boom: "
                    "ZeroDivisionError: division by zero")
    profiled = runner.invoke(app, ["kernel", "profile", f"{user_file}::boom"])
    assert _one_error_line(profiled) == line


def test_debug_keeps_the_traceback(user_file: Path) -> None:
    result = runner.invoke(app, ["--debug", "kernel", "run", f"{user_file}::boom"])
    assert result.exit_code == USAGE_ERROR and "Traceback" in result.output
    env = runner.invoke(app, ["kernel", "run", f"{user_file}::boom"],
                        env={"TESSERA_DEBUG": "1"})
    assert "Traceback" in env.output


def test_an_exception_in_example_inputs_names_the_users_line(user_file: Path) -> None:
    line = _one_error_line(runner.invoke(app, ["kernel", "run", f"{user_file}::bad_inputs"]))
    at = _line_of('    return {}["missing"]')
    assert line.startswith(f"error: mine.py:{at} in example_inputs_bad_inputs: KeyError")


@pytest.mark.parametrize(("kernel", "message"), [
    ("plain", "plain is a plain function; decorate it with @nki.jit"),
    ("no_return", "no_return returned nothing"),
    ("too_big", "SBUF capacity exceeded"),
])
def test_kernel_mistakes_are_named(user_file: Path, kernel: str, message: str) -> None:
    assert message in _one_error_line(runner.invoke(app, ["kernel", "run",
                                                          f"{user_file}::{kernel}"]))


def test_uninitialised_reads_say_so(user_file: Path) -> None:
    result = runner.invoke(app, ["kernel", "run", f"{user_file}::uninitialised"])
    assert result.exit_code == MISMATCH
    assert "poison value of uninitialised memory (NaN) at [0, 0] of output 0" in result.output
    assert "inf" not in result.output


def test_a_bad_target_override_is_one_line() -> None:
    result = runner.invoke(app, ["kernel", "run", VECTOR_ADD],
                           env={"NEURON_PLATFORM_TARGET_OVERRIDE": "trn9"})
    assert "NEURON_PLATFORM_TARGET_OVERRIDE='trn9' is not a chip" in _one_error_line(result)


@pytest.mark.parametrize("option", ["--png", "--trace", "--json"])
def test_unwritable_outputs_fail_before_the_work(tmp_path: Path, option: str) -> None:
    target = tmp_path / "missing" / "out.file"
    result = runner.invoke(app, ["kernel", "profile", VECTOR_ADD, option, str(target)])
    line = _one_error_line(result)
    assert line.startswith(f"error: {option}") and "does not exist" in line
    assert "instructions" not in result.output  # no profile was printed


def test_collective_sweep_png_into_a_missing_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["collective", "all_reduce", "--sweep", "--png",
                                 str(tmp_path / "nope" / "a.png")])
    assert "does not exist" in _one_error_line(result)


@pytest.mark.parametrize(("setting", "message"), [
    ("calibration.cross_engine_sync_s=-1e-6", "must be >= 0"),
    ("calibration.hbm_strided_efficiency=1.5", "must be in (0, 1]"),
    ("core.dma.fixed_latency_s=-1e-6", "must not be negative"),
    ("calibration.no_such_constant=1", "no constant"),
    ("core.sbuf.bytes_per_partition", "expected KEY=VALUE"),
])
def test_out_of_range_what_ifs(setting: str, message: str) -> None:
    result = runner.invoke(app, ["kernel", "profile", VECTOR_ADD, "--set", setting])
    assert message in _one_error_line(result)


def test_lnc_2_on_a_chip_that_forbids_it() -> None:
    result = runner.invoke(app, ["kernel", "profile", VECTOR_ADD, "--chip", "trn1",
                                 "--lnc", "2"])
    assert "trn1 runs logical cores of 1" in _one_error_line(result)


@pytest.mark.parametrize(("args", "message"), [
    (["--bytes", "1e20"], "exceeds the 16 GiB of HBM each rank has"),
    (["--png", "x.png"], "--png draws the size sweep"),
])
def test_collective_inputs_that_make_no_sense(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["collective", "ALL_REDUCE", *args])
    assert message in _one_error_line(result)


def test_every_chip_preset_is_a_chip_choice() -> None:
    for chip in ("trn1", "inf2", "trn2", "trn3"):
        result = runner.invoke(app, ["kernel", "profile", VECTOR_ADD, "--chip", chip])
        assert result.exit_code == 0, (chip, result.output)
        assert f"on {chip}" in result.output
    bad = _one_error_line(runner.invoke(app, ["kernel", "run", VECTOR_ADD, "--chip", "tpu"]))
    assert "inf2, trn1, trn2, trn3" in bad


def test_short_help_and_singular_counts() -> None:
    for args in (["-h"], ["kernel", "-h"], ["kernel", "profile", "-h"], ["hw", "-h"],
                 ["collective", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output, args
    usage = runner.invoke(app, ["collective", "-h"]).output
    assert "tessera collective [OPTIONS] {OP}" in " ".join(usage.split())  # one argument
    one = runner.invoke(app, ["collective", "send_recv", "--ranks", "2", "--bytes", "4KiB"])
    assert one.exit_code == 0 and "1 steps" not in one.output and "1 ranks" not in one.output


def test_collective_defaults_cross_chips() -> None:
    result = runner.invoke(app, ["collective", "all_reduce"])
    assert result.exit_code == 0, result.output
    assert "over 32 ranks on trn1.32xlarge" in result.output
    assert "busiest link   none" not in result.output
