"""`python -m recagent` runs the CLI."""

from recagent.cli import main

main()
