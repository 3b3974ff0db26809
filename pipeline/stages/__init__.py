"""`pipeline run`: the context every stage shares, the stage engine, the stages themselves (folds,
train, predict, thresholds, submit, diagnostics, scores) and their sequence (run.py); `pipeline
check` on a run's context."""
