"""The reports of a compiled model: `profile.json`, `layers.png` and a Perfetto `trace.json`.

They live beside the compiler, which owns the data they render, so that
`CompiledModel.report(path)` can write them; `tessera.report` re-exports the writers
(`write_model_report`, `write_model_json`, `write_model_png`, `write_model_trace`,
`model_report`, `model_chrome_trace`) next to the kernel reports. See docs/compiler.md,
"Reports and the command line".
"""
