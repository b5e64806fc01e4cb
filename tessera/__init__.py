"""Tessera: an open software stack for Trainium-class accelerators.

`tessera.compile(model, example_inputs, chip=...)` is the graph compiler's entry point and
`tessera.eager_profile(chip=...)` prices eager PyTorch code (`tessera.compiler`); both are
imported on first use, so `import tessera` stays light.
"""
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name in ("compile", "eager_profile"):
        import tessera.compiler

        return getattr(tessera.compiler, name)
    raise AttributeError(f"module 'tessera' has no attribute {name!r}")
