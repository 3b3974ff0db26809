"""`pipeline tune`: trials of a recipe on Optuna."""
