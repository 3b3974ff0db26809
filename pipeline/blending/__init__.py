"""`pipeline blend`: several finished runs of one competition, on the same folds, combined on their
out-of-fold predictions (members.py reads and checks them, methods.py holds the ways to combine,
blend.py the command), written as a run of its own: its OOF and test predictions, scores,
registry row and submission."""
