"""pipeline: cross-validated models and valid submissions for Kaggle image competitions."""
import os

# albumentations phones home for updates on import; Kaggle kernels and CI have no network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


class PipelineError(Exception):
    """A problem the user can fix; the CLI prints its message as one line, without a traceback."""
