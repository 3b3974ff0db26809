"""Labels as a competition's files write them: a class name, or space-separated tags, and the
classes a competition leaves unlisted. What a model learns from them is its task's (tasks.py)."""
from __future__ import annotations

import pandas as pd

from pipeline.training.tasks import tags


def discover(labels: pd.Series, multilabel: bool) -> list[str]:
    """The classes a competition leaves unlisted: its distinct training labels (tags), sorted."""
    return sorted({t for label in labels for t in tags(label)} if multilabel else set(labels))
