"""Tessera: an open software stack for Trainium-class accelerators.

`tessera.compile(model, example_inputs, chip=...)` is the graph compiler's entry point
(`tessera.compiler`); it is imported on first use, so `import tessera` stays light.
"""
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name == "compile":
        from tessera.compiler import compile as compile_model

        return compile_model
    raise AttributeError(f"module 'tessera' has no attribute {name!r}")
