"""Dogs vs. Cats Redux: Kernels Edition: is it a dog? Scored by log loss on P(dog).
https://www.kaggle.com/c/dogs-vs-cats-redux-kernels-edition"""
from pipeline.competition import Submission
from pipeline.layouts import FileNames
from pipeline.metrics import log_loss
from pipeline.recipe import starter

slug = "dogs-vs-cats-redux-kernels-edition"
layout = FileNames(train_dir="train", test_dir="test")  # train/cat.123.jpg, train/dog.7.jpg; test/<id>.jpg
classes = ["cat", "dog"]
metric = log_loss  # lower is better
# label = P(dog), kept within [0.005, 0.995]: a few confident mistakes among 12,500 would
# otherwise dominate the log loss (the CV score is of the clipped probabilities)
submission = Submission(id_column="id", label_column="label", probability_of="dog", clip=0.005)
symmetry = "hflip"
resize = "crop"  # photos of every shape: the central square, proportions kept (as ImageNet evaluates)
# train on random crops of >= 3/4 of the picture (fastbook's pets setting: a few epochs from ImageNet weights)
recipes = starter(size=256, cpu_size=128, symmetry=symmetry, random_crop=0.75)
