"""`python -m soma` is the `soma` command."""

from soma.cli import main

main()
