"""`python -m clipprobe` runs the command line."""

from .cli import main

main()
