"""Command-line interface: thin typer wrappers, the only layer that parses arguments or prints."""
