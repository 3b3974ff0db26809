"""Planet: Understanding the Amazon from Space: the tags of each satellite chip (weather, land
cover, land use), scored by F2 per image. https://www.kaggle.com/c/planet-understanding-the-amazon-from-space"""
from pipeline.competition import Submission
from pipeline.layouts import TagsCSV
from pipeline.metrics import f2
from pipeline.recipe import starter

slug = "planet-understanding-the-amazon-from-space"
layout = TagsCSV(csv="train_v2.csv", id_column="image_name", label_column="tags", suffix=".jpg",
                 train_dir="train-jpg", test_dir=("test-jpg", "test-jpg-additional"))
classes = [
    "agriculture", "artisinal_mine", "bare_ground", "blooming", "blow_down", "clear", "cloudy",
    "conventional_mine", "cultivation", "habitation", "haze", "partly_cloudy", "primary", "road",
    "selective_logging", "slash_burn", "water",
]
metric = f2  # tags above per-class thresholds, tuned on the out-of-fold predictions
submission = Submission(id_column="image_name", label_column="tags", sample="sample_submission_v2.csv")
symmetry = "dihedral"  # seen from above: every flip and quarter turn is another valid chip
recipes = starter(size=256, cpu_size=128, symmetry=symmetry)
