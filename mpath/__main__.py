"""``python -m mpath`` runs the command line."""

from mpath.cli import main

main(prog_name="mpath")
