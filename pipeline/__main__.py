"""`python -m pipeline`: the command line, for where the `pipeline` script is not on PATH (a Kaggle kernel)."""
import sys

from pipeline.cli import main

sys.exit(main())
