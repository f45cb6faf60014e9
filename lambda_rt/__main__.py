"""``python -m lambda_rt`` runs the command line."""

from lambda_rt.cli import main

main()
