"""Tools around the kernel language: the `neuronxcc.nki` aliases, the opt-in pytest plugin
and `python -m tessera.nki run` (a third-party suite run unchanged), `nki.benchmark` (the
timing model's latency), and nl.zeros/ones/full on HBM recorded as a DMA (seen by the LNC=2
race checker and charged by the timing model)."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki, sim
from tessera.nki import compat
from tessera.nki import pytest_plugin as plugin
from tessera.nki.__main__ import main as nki_main
from tessera.nki.beta1 import top as beta1_top
from tessera.nki.errors import CoreRaceError, KernelUsageError
from tessera.nki.legacy import PERCENTILES
from tessera.nki.pytest_plugin import HEADER
from tessera.nki.stream import Engine, Opcode

X = np.random.default_rng(4).standard_normal((64, 32)).astype(np.float32)
ALIASES = (*compat.MODULES, *compat.LEGACY_MODULES, "neuronxcc")


@pytest.fixture
def clean_aliases():
    """sys.modules without any nki/neuronxcc entry, restored afterwards."""
    saved = {k: sys.modules.pop(k) for k in ALIASES if k in sys.modules}
    yield
    compat.uninstall()
    sys.modules.update(saved)


# ------------------------------------------------------------------ neuronxcc.nki aliases
def test_install_resolves_the_beta1_neuronxcc_paths(clean_aliases):
    assert compat.install(force=True) and compat.installed()
    from neuronxcc import nki as legacy  # noqa: PLC0415 - the alias under test

    # neuronxcc.nki is the Beta-1 front end, its own modules over the same machine
    assert legacy is beta1_top and legacy.jit is not nki.jit
    for sub in ("language", "isa", "typing", "compiler"):
        assert importlib.import_module(f"neuronxcc.nki.{sub}") is getattr(beta1_top, sub)
    assert importlib.import_module("nki").collectives is nki.collectives
    compat.uninstall()
    assert not any(k in sys.modules for k in ALIASES)


def test_a_real_neuronxcc_is_left_alone_unless_forced(clean_aliases, monkeypatch):
    import types

    real = types.ModuleType("neuronxcc")
    monkeypatch.setitem(sys.modules, "neuronxcc", real)
    compat.install()
    assert sys.modules["neuronxcc"] is real and "neuronxcc.nki" not in sys.modules
    compat.install(force=True)
    assert sys.modules["neuronxcc"] is not real and sys.modules["neuronxcc.nki"] is beta1_top
    compat.uninstall()  # removes the stand-in, not what it replaced
    assert "neuronxcc" not in sys.modules


# ------------------------------------------------------- a third-party suite, run unchanged
KERNEL_FILE = '''
import nki
import nki.isa as nisa
import nki.language as nl


@nki.jit
def add(a, b):
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    x = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
    y = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=x, src=a)
    nisa.dma_copy(dst=y, src=b)
    nisa.tensor_tensor(dst=x, data1=x, data2=y, op=nl.add)
    nisa.dma_copy(dst=out, src=x)
    return out
'''

TEST_FILE = '''
import numpy as np
import nki
import neuronxcc.nki.isa as legacy_isa
import neuronxcc.nki.language as legacy_nl
from neuronxcc import nki as legacy_nki
from add_kernel import add

A = np.arange(128 * 64, dtype=np.float32).reshape(128, 64)


def test_simulate():
    np.testing.assert_array_equal(nki.simulate(add)(A, A), 2 * A)
    # the vendor library's harness indexes the simulated kernel with the core count
    np.testing.assert_array_equal(nki.simulate(add)[1](A, A), 2 * A)


def test_legacy_paths():
    assert legacy_nl.float32 is nki.language.float32 and legacy_isa.nc_matmul
    np.testing.assert_array_equal(legacy_nki.simulate_kernel(legacy_nki.baremetal(add), A, A),
                                  2 * A)


def test_left_out_by_k():
    raise AssertionError("deselected by the -k given to python -m tessera.nki run")
'''


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("third_party")
    (root / "add_kernel.py").write_text(textwrap.dedent(KERNEL_FILE))
    (root / "test_add.py").write_text(textwrap.dedent(TEST_FILE))
    # a suite's conftest may import nki at module level: the aliases exist before it loads
    (root / "conftest.py").write_text("import nki.isa as nisa\n\nENGINE = nisa.vector_engine\n")
    return root


def test_python_m_tessera_nki_run_runs_a_third_party_suite_unchanged(suite):
    # one interpreter start (seconds): `run` is `pytest -p tessera.nki.pytest_plugin ARGS`
    done = subprocess.run([sys.executable, "-m", "tessera.nki", "run", "-p", "no:cacheprovider",
                           "-k", "not left_out", "."], cwd=suite, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert HEADER in done.stdout and "2 passed, 1 deselected" in done.stdout


def test_plugin_installs_at_configure_and_restores_at_unconfigure(clean_aliases, monkeypatch):
    import types

    real = types.ModuleType("neuronxcc")  # a real package the run shadows, then gets back
    monkeypatch.setitem(sys.modules, "neuronxcc", real)
    plugin.pytest_configure(None)
    assert importlib.import_module("nki") is nki
    assert importlib.import_module("neuronxcc.nki.language") is beta1_top.language
    assert plugin.pytest_report_header(None) == HEADER
    plugin.pytest_unconfigure(None)
    assert sys.modules["neuronxcc"] is real
    assert not any(k in sys.modules for k in ALIASES if k != "neuronxcc")


def test_the_plugin_is_opt_in():
    from importlib.metadata import entry_points

    assert not [e for e in entry_points(group="pytest11") if e.value.startswith("tessera")]


def test_cli_help_and_bad_usage(capsys):
    assert nki_main(["-h"]) == 0
    assert "python -m tessera.nki run [PYTEST_ARGS...]" in capsys.readouterr().out
    for argv in ([], ["frobnicate"]):
        assert nki_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("python -m tessera.nki: ")


# ------------------------------------------------------------------------------ benchmark
@nki.jit
def scale2(a):
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a)
    nisa.tensor_scalar(dst=t, data=t, op0=nl.multiply, operand0=2.0)
    nisa.dma_copy(dst=out, src=t)
    return out


def test_benchmark_returns_outputs_and_the_timing_models_latency(tmp_path, monkeypatch):
    monkeypatch.delenv("NEURON_PLATFORM_TARGET_OVERRIDE", raising=False)
    trace_path = tmp_path / "profile.ntff"
    bench = nki.benchmark(warmup=3, iters=7, save_trace_name=str(trace_path))(scale2)
    np.testing.assert_array_equal(bench(X), 2 * X)
    lat = bench.benchmark_result.nc_latency
    want_us = sim.schedule(nki.trace(scale2)(X)).total_s * 1e6
    assert want_us > 0
    assert [lat.get_latency_percentile(p) for p in PERCENTILES] == [want_us] * len(PERCENTILES)
    assert bench.benchmark_result.profile.chip == "trn2"
    assert "traceEvents" in json.loads(trace_path.read_text())  # Perfetto JSON


def test_benchmark_bare_decorator_and_lnc2_grid(monkeypatch):
    monkeypatch.delenv("NEURON_PLATFORM_TARGET_OVERRIDE", raising=False)

    def halves(x):
        core = nl.program_id(0)
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((32, 32), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[core * 32:(core + 1) * 32, :])
        nisa.dma_copy(dst=out[core * 32:(core + 1) * 32, :], src=t)
        return out

    bench = nki.benchmark(halves)[2]
    np.testing.assert_array_equal(bench(X), X)
    assert bench.benchmark_result.profile.cores == 2
    assert bench.options.warmup == 10 and bench.options.iters == 100  # the page's defaults


@pytest.mark.parametrize(("call", "match"), [
    (lambda: nki.benchmark(iters=0), "iters must be an int >= 1"),
    (lambda: nki.benchmark(warmup=-1), "warmup must be an int >= 0"),
    (lambda: nki.benchmark(save_neff_name="k.neff", save_trace_name="p.ntff"),
     "save_trace_name needs save_neff_name unset or 'file.neff'"),
    (lambda: nki.benchmark(device_lock=True), "unknown option"),
    (lambda: nki.benchmark(scale2).benchmark_result, "has not run yet"),
])
def test_benchmark_usage_errors(call, match):
    with pytest.raises(KernelUsageError, match=match) as err:
        call()
    assert err.value.location.startswith(__file__)
    assert "\n" not in str(err.value)


def test_only_the_documented_percentiles_are_served():
    bench = nki.benchmark(scale2)
    bench(X)
    with pytest.raises(KernelUsageError, match=r"percentile 95 is not available"):
        bench.benchmark_result.nc_latency.get_latency_percentile(95)


# --------------------------------------------------------------- nl.zeros/ones/full in HBM
def zero_then_halves(barrier: bool):
    """Each core zero-fills the shared output with nl.zeros, then stores its half."""

    def kernel(x):
        rows, cols = x.shape
        half = rows // 2
        core = nl.program_id(0)
        out = nl.zeros(x.shape, x.dtype, buffer=nl.shared_hbm)  # fill
        if barrier:
            nisa.core_barrier(out, (0, 1))
        t = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[core * half:(core + 1) * half, :])
        nisa.dma_copy(dst=out[core * half:(core + 1) * half, :], src=t)  # half
        return out

    return kernel


def _line(fn, marker: str) -> str:
    lines, first = inspect.getsourcelines(fn)
    (hit,) = [first + i for i, text in enumerate(lines) if text.rstrip().endswith(f"# {marker}")]
    return f"{inspect.getsourcefile(fn)}:{hit}"


def test_hbm_zeros_is_a_write_the_race_checker_sees():
    kernel = zero_then_halves(barrier=False)
    with pytest.raises(CoreRaceError) as err:  # core 1's fill lands on core 0's half
        nki.simulate(nki.jit(kernel)[2])(X)
    msg = str(err.value)
    assert f"core 1's dma_copy at {_line(kernel, 'fill')} writes it" in msg
    assert f"core 0's dma_copy at {_line(kernel, 'half')} writes it" in msg
    fenced = nki.jit(zero_then_halves(barrier=True))[2]
    np.testing.assert_array_equal(nki.simulate(fenced)(X), X)


@pytest.mark.parametrize("symbolic", [False, True])
def test_hbm_fills_are_dmas_from_a_constant_and_take_time(symbolic):
    def kernel(x):
        a = nl.zeros((4, 8), nl.float32, buffer=nl.shared_hbm, name="z")
        b = nl.ones((4, 8), nl.bfloat16, buffer=nl.hbm)
        c = nl.full((4, 8), 2.5, nl.int32, buffer=nl.private_hbm)
        return a, b, c

    res = nki.trace(nki.jit(kernel), symbolic=symbolic)(X)
    fills = [i for i in res.instructions if i.opcode is Opcode.DMA_COPY]
    assert len(fills) == len(res.instructions) == 3
    assert all(i.engine is Engine.DMA for i in fills)
    assert [i.reads[0].tensor for i in fills][0] == "z_const0"
    assert [i.writes[0].tensor for i in fills] == ["z0", "hbm0", "phbm0"]
    assert sim.schedule(res, "trn2").total_s > 0
    if not symbolic:
        a, b, c = res.outputs
        assert not a.any() and (b.astype(np.float32) == 1).all()
        np.testing.assert_array_equal(c, np.full((4, 8), 2, np.int32))  # 2.5 -> 2 (RNE)


def test_the_simulators_target_variable_picks_the_default_chip(monkeypatch):
    """NKI_NC_VERSION (gen2/gen3/gen4), which the vendor's harness sets before nki.simulate,
    wins over NEURON_PLATFORM_TARGET_OVERRIDE."""
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", "trn1")
    monkeypatch.setenv("NKI_NC_VERSION", "gen4")
    assert nki.default_chip() == "trn3"
    monkeypatch.delenv("NKI_NC_VERSION")
    assert nki.default_chip() == "trn1"
    monkeypatch.setenv("NKI_NC_VERSION", "gen9")
    with pytest.raises(nki.KernelUsageError, match="NKI_NC_VERSION='gen9' is not a chip"):
        nki.default_chip()


def test_install_gives_kernels_the_tracers_builtin_global(clean_aliases):
    """Vendor kernels call builtin.lang.shared_constant / identity without an import."""
    import builtins

    compat.install(force=True)
    try:
        @nki.jit
        def kernel(x):
            ident = builtin.lang.shared_constant(builtin.lang.identity(4, nl.float32))  # noqa: F821
            t = nl.ndarray((4, 4), nl.float32, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=ident)
            out = nl.ndarray((4, 4), nl.float32, buffer=nl.shared_hbm)
            nisa.dma_copy(dst=out, src=t)
            return out

        np.testing.assert_array_equal(nki.simulate(kernel)(np.zeros((4, 4), np.float32)),
                                      np.eye(4))
    finally:
        compat.uninstall()
    assert not hasattr(builtins, "builtin")
