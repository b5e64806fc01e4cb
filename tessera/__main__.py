"""`python -m tessera` runs the command-line interface."""

from tessera.cli.app import main

main()
