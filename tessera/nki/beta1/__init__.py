"""The NKI Beta-1 front end (`neuronxcc.nki`, Neuron releases up to 2.27).

Beta-1 kernels use tiles as values, masks, `nl.arange`/`nl.mgrid` affine indexing,
`nl.par_dim` block dimensions and N-D SPMD grids. This package translates them into the
same `Instruction` stream the Beta-2 front end (`tessera.nki`) records, so the simulator,
the timing model, reports and the CLI run them unchanged. `compat.install()` maps
`neuronxcc.nki` and its submodules here (`tessera.nki.beta1.top` is `neuronxcc.nki`).

This package's `__init__` stays light: `tessera.nki.tensor` imports its index module.
"""
