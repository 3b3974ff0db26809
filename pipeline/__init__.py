"""pipeline: cross-validated models and valid submissions for Kaggle image competitions."""
import os
import signal

# albumentations phones home for updates on import; Kaggle kernels and CI have no network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


class PipelineError(Exception):
    """A problem the user can fix; the CLI prints its message as one line, without a traceback."""


class Pruned(Exception):
    """A tuning trial stopped early: its scores so far were not promising (tune.py)."""


def stop_on_sigterm() -> None:
    """SIGTERM (Kaggle kernels, cluster schedulers, torchrun stopping its other ranks) ends a run as
    Ctrl-C does: recorded as interrupted, its files left whole, one line said."""
    signal.signal(signal.SIGTERM, _sigterm)


def _sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")
