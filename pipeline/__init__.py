"""pipeline: cross-validated models and valid submissions for Kaggle image competitions."""
import os

# albumentations phones home for updates on import; Kaggle kernels and CI have no network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


class PipelineError(Exception):
    """A problem the user can fix; the CLI prints its message as one line, without a traceback."""


class Pruned(Exception):
    """A tuning trial stopped early: its scores so far were not promising (tune.py)."""
