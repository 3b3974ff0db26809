"""Dog Breed Identification: 120 breeds (ImageNet's dogs), scored by multi-class log loss.
https://www.kaggle.com/c/dog-breed-identification"""
from pipeline.competition import Submission
from pipeline.layouts import LabelsCSV
from pipeline.metrics import log_loss
from pipeline.recipe import starter

slug = "dog-breed-identification"
layout = LabelsCSV(csv="labels.csv", id_column="id", label_column="breed", suffix=".jpg")  # train/<id>.jpg
classes = None  # the 120 breeds of labels.csv
metric = log_loss  # lower is better; Kaggle clips probabilities to [1e-15, 1 - 1e-15]
submission = Submission(id_column="id", per_class=True)  # id, then one probability column per breed
symmetry = "hflip"  # photos: a mirrored dog is the same dog; an upside-down one is not a photo we get
resize = "crop"  # photos of every shape: the central square, proportions kept (as ImageNet evaluates)
# train on random crops of >= 3/4 of the picture (fastbook's pets setting: a few epochs from ImageNet weights)
recipes = starter(size=288, cpu_size=128, symmetry=symmetry, random_crop=0.75)
