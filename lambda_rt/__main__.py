"""``python -m lambda_rt`` runs the command line."""

from lambda_rt.cli import main

if __name__ == "__main__":  # Dask worker processes re-import the main module
    main()
