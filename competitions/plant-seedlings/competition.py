"""Plant Seedlings Classification: 12 species photographed from above, scored by micro-F1.
https://www.kaggle.com/c/plant-seedlings-classification"""
from pipeline.competition import Submission
from pipeline.layouts import ClassFolders
from pipeline.metrics import micro_f1
from pipeline.recipe import Phase, Recipe, differential, swa_round
from pipeline.search import Choice, Float, Int

slug = "plant-seedlings-classification"
layout = ClassFolders(train_dir="train", test_dir="test", test_id="name")  # train/<species>/<file>.png
classes = [
    "Black-grass", "Charlock", "Cleavers", "Common Chickweed", "Common wheat", "Fat Hen",
    "Loose Silky-bent", "Maize", "Scentless Mayweed", "Shepherds Purse",
    "Small-flowered Cranesbill", "Sugar beet",
]
metric = micro_f1
submission = Submission(id_column="file", label_column="species")
symmetry = "dihedral"  # shot from above: every flip and quarter turn is still the same seedling
# Kaggle's private leaderboard (full-resolution images): where `pipeline report` places each run
references = {"gold": 0.99244, "silver": 0.98614, "bronze": 0.98236, "median": 0.95591}

recipes = {
    # a 2-core laptop CPU in under 15 minutes: one of the five folds (--train-folds all for
    # every fold). Staged unfreezing: the head on cached activations; then all but the early
    # layers at 96, 128 and 150 px (the images' own size), with differential rates. The early
    # layers stay as ImageNet trained them: their backward pass at 150 px is 40% of a step, and
    # training them bought nothing over two folds (benchmarks/RESULTS.md, issue 17).
    # Tuned with `pipeline tune` (benchmarks/RESULTS.md, study "budget", trial 2): a gentler
    # head rate, a higher last rate, rare classes oversampled halfway, strong smoothing, and two
    # epochs fewer
    "cpu": Recipe(
        train_folds=(0,),
        tta=4,
        label_smoothing=0.15,
        oversample=0.5,
        phases=(
            Phase(size=128, epochs=2, lr=3.5e-3, frozen=("early", "late"), precompute=True),
            Phase(size=96, epochs=2, lr=differential(4e-3), frozen=("early",)),
            Phase(size=128, epochs=2, lr=differential(2e-3), frozen=("early",)),
            _last := Phase(size=150, epochs=2, lr=differential(3e-3, ratio=2.8), frozen=("early",)),
            # two more epochs at half the rates, averaged (SWA): +0.5 and +0.9 points on folds 0
            # and 1 (benchmarks/RESULTS.md, issue 17)
            swa_round(_last, epochs=2),
        ),
    ),
    # one GPU: every fold, longer and at higher resolution
    "gpu": Recipe(
        batch_size=64,
        tta=8,
        label_smoothing=0.1,
        phases=(
            Phase(size=128, epochs=2, lr=1e-2, frozen=("early", "late"), precompute=True),
            Phase(size=192, epochs=6, lr=differential(2e-3)),
            Phase(size=256, epochs=6, lr=differential(1e-3)),
        ),
    ),
}

# `pipeline tune plant-seedlings` searches around the cpu recipe (fold 0, about 11 minutes a trial;
# --folds 0,1 for two).
# Oversampling to the largest class makes an epoch about 1.45x longer: the epochs of the two
# costly phases are searched with it, so the 15-minute budget is part of the search
search = {
    "phase1.lr": Float(3e-3, 3e-2, log=True),  # the head on cached activations
    "phase4.lr": Float(3e-4, 3e-3, log=True),  # the whole network at 150 px (the body keeps its share)
    "phase4.ratio": Float(2.0, 5.0),           # differential rates: each group lr/ratio of the next
    "phase3.epochs": Int(2, 3),
    "phase4.epochs": Int(2, 3),
    "label_smoothing": Float(0.0, 0.2),
    "oversample": Choice("none", 0.5, "max"),  # Black-grass is the rare class the model confuses
}
