"""`python -m leadpush` runs the command line."""

from .cli import main

main()
