"""Data that would run but mislead: a repeated id is refused in one line (count, examples, file);
what a layout leaves out (classes with no image, files it doesn't read, empty class folders) is
named in one line each (links that lead nowhere and images the labels CSV has no row for
among them); the sample submission is found under Kaggle's spellings of its name."""
import shutil

import cv2
import zipfile

import pandas as pd
import pytest

from kaggle_layouts import dog_breeds, planet
from pipeline import PipelineError
from pipeline.competition import load
from pipeline.layouts import LabelsCSV
from pipeline.scaffold import new
from pipeline.stages import submission as sub

from conftest import PLANT_CLASSES

DOGS = LabelsCSV(csv="labels.csv", label_column="breed", suffix=".jpg")  # as dog-breed-identification's
READ = ".bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp"


def plant_start(data):
    """What a run's start sees: the layout's notices, the training table and the unseen classes."""
    comp = load("plant-seedlings")
    train = comp.layout.train(data, comp.classes)
    comp.require_two_kinds(train["label"], data)
    return comp.layout.notices(data) + comp.unseen_classes(train["label"], data), comp


@pytest.mark.quick
def test_valid_data_gives_no_warning(plant_data, tmp_path):
    lines, comp = plant_start(plant_data)
    assert lines == []
    test = comp.layout.test(plant_data)
    sub.read_sample(sub.sample_file(plant_data, comp.submission), comp.submission, list(test["id"]), comp.classes)
    dogs = dog_breeds(tmp_path / "dogs")
    assert DOGS.notices(dogs) == [] and len(DOGS.train(dogs, None)) == 24 and len(DOGS.test(dogs)) == 5


@pytest.mark.quick
def test_repeated_ids_in_the_labels_csv_are_refused_with_the_count_and_examples(tmp_path):
    root = dog_breeds(tmp_path / "dogs")
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    pd.concat([labels, labels.iloc[[3, 1, 3, 7]]]).to_csv(root / "labels.csv", index=False)
    with pytest.raises(PipelineError) as e:
        DOGS.train(root, None)
    ids = labels["id"]
    assert str(e.value) == (f"{root / 'labels.csv'}: 3 ids appear more than once (e.g. {ids[3]}, {ids[1]}, {ids[7]}); "
                            f"list each image once (drop the repeated rows)")


@pytest.mark.quick
def test_an_image_name_in_two_class_folders_gets_class_ids_and_a_notice(plant_data):
    shutil.copy(plant_data / "train" / "Maize" / "07000ab.png", plant_data / "train" / "Charlock")
    lines, comp = plant_start(plant_data)
    assert lines == ["1 image names appear in more than one class folder (e.g. 07000ab): training ids are "
                     "class/name; an image copied into two classes would sit on both sides of a fold"]
    train = comp.layout.train(plant_data, comp.classes)
    assert train["id"].is_unique and {"Maize/07000ab", "Charlock/07000ab"} <= set(train["id"])


@pytest.mark.quick
def test_two_images_with_one_name_in_one_class_folder_are_two_training_images(plant_data):
    # (the brain MRI set's yes/Y92.jpg and yes/Y92.png are two scans)
    first = sorted((plant_data / "train" / "Maize").iterdir())[0]
    cv2.imwrite(str(first.with_suffix(".jpg")), cv2.imread(str(first))[::-1])
    lines, comp = plant_start(plant_data)
    assert not any("more than one class folder" in line for line in lines)
    train = comp.layout.train(plant_data, comp.classes)
    assert train["id"].is_unique and {f"Maize/{first.name}", f"Maize/{first.stem}.jpg"} <= set(train["id"])


@pytest.mark.quick
def test_two_test_images_with_one_id_are_refused(tmp_path):
    root = dog_breeds(tmp_path / "dogs")
    first = sorted((root / "test").iterdir())[0]
    shutil.copy(first, first.with_suffix(".png"))  # the layout's test ids are stems: a.jpg and a.png are both "a"
    with pytest.raises(PipelineError) as e:
        DOGS.test(root)
    assert str(e.value) == f"{root / 'test'}: 1 ids appear more than once (e.g. {first.stem}); keep one test image per id"


@pytest.mark.quick
def test_repeated_ids_in_the_sample_submission_are_refused(plant_data):
    spec = load("plant-seedlings").submission
    sample = pd.read_csv(plant_data / "sample_submission.csv")
    pd.concat([sample, sample.iloc[[2, 0]]]).to_csv(plant_data / "sample_submission.csv", index=False)
    with pytest.raises(PipelineError) as e:
        sub.read_sample(plant_data / "sample_submission.csv", spec, list(sample["file"]), PLANT_CLASSES)
    assert str(e.value) == (f"{plant_data / 'sample_submission.csv'}: 2 ids appear more than once (e.g. t0002.png, "
                            f"t0000.png); the sample lists each test image once: download the competition data again")


@pytest.mark.quick
def test_training_data_with_only_some_of_the_classes_is_named(plant_data):
    for name in PLANT_CLASSES:
        if name not in ("Charlock", "Maize"):
            shutil.rmtree(plant_data / "train" / name)
    lines, comp = plant_start(plant_data)
    assert lines == [f"{plant_data / 'train'}: only 2 of the 12 classes in {comp.folder / 'competition.py'} have "
                     f"training images; none for Black-grass, Cleavers, Common Chickweed, Common wheat, Fat Hen, ..."]


@pytest.mark.quick
def test_tags_alike_on_every_image_are_refused_and_tags_that_differ_are_not(tmp_path):
    comp = load("planet-understanding-the-amazon-from-space")
    root = planet(tmp_path / "planet")
    labels = pd.read_csv(root / "train_v2.csv", dtype=str)
    comp.require_two_kinds(labels["tags"], root)  # the tags differ from image to image
    labels["tags"] = ["primary clear", "clear primary"] * (len(labels) // 2)  # the same two tags, in either order
    with pytest.raises(PipelineError) as e:
        comp.require_two_kinds(labels["tags"], root)
    assert str(e.value) == (f"{root / 'train_v2.csv'}: every training image has the tags 'clear primary'; there is "
                            f"nothing to learn: point --data at the full data, or add images with other tags")


@pytest.mark.quick
@pytest.mark.parametrize("classes", [None, ["beagle", "boxer", "chihuahua", "pug"]])
def test_blank_or_nan_labels_name_the_rows_and_say_to_fill_them(tmp_path, classes):
    root = dog_breeds(tmp_path / "dogs")
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    for row, gap in zip([3, 8, 16, 17, 19, 20], ["", "NaN", " ", "nan", "", "#N/A"]):
        labels.loc[row, "breed"] = gap
    labels.to_csv(root / "labels.csv", index=False)
    with pytest.raises(PipelineError) as e:
        DOGS.train(root, classes)
    ids = labels["id"]
    assert str(e.value) == (f"{root / 'labels.csv'}: 6 rows have no label (ids {ids[3]}, {ids[8]}, {ids[16]}, "
                            f"{ids[17]}, {ids[19]}, ...): fill them in or drop the rows")
    # a class the definition lists under a gap's name is a class
    labels.loc[[3, 8, 16, 17, 19, 20], "breed"] = "N/A"
    labels.to_csv(root / "labels.csv", index=False)
    assert (DOGS.train(root, ["N/A", "beagle", "boxer", "chihuahua", "pug"])["label"] == "N/A").sum() == 6


@pytest.mark.quick
def test_an_image_with_no_tags_is_named_by_its_id(tmp_path):
    root = planet(tmp_path / "planet")
    labels = pd.read_csv(root / "train_v2.csv", dtype=str)
    labels.loc[5, "tags"] = "nan"
    labels.to_csv(root / "train_v2.csv", index=False)
    layout = load("planet-understanding-the-amazon-from-space").layout
    with pytest.raises(PipelineError) as e:
        layout.train(root, None)
    assert str(e.value) == f"{root / 'train_v2.csv'}: 1 row has no tags (ids train_5): fill them in or drop the rows"


@pytest.mark.quick
def test_files_the_layout_skips_are_counted_with_their_suffixes_and_what_is_read(plant_data):
    (plant_data / "train" / "Maize" / "notes.txt").write_text("x")
    (plant_data / "train" / "Maize" / "anim.gif").write_bytes(b"GIF89a")
    lines, _ = plant_start(plant_data)
    maize = plant_data / "train" / "Maize"
    assert lines == [f"skipped 2 files that are not images (.gif, .txt): {maize / 'anim.gif'}, {maize / 'notes.txt'}; "
                     f"only {READ} files are read"]


@pytest.mark.quick
def test_an_empty_class_folder_is_named_and_its_class_has_no_images(plant_data):
    for p in (plant_data / "train" / "Black-grass").iterdir():
        p.unlink()
    lines, comp = plant_start(plant_data)
    assert lines == [f"skipped 1 class folders with no images: {plant_data / 'train' / 'Black-grass'}",
                     f"{plant_data / 'train'}: only 11 of the 12 classes in {comp.folder / 'competition.py'} have "
                     f"training images; none for Black-grass"]


@pytest.mark.quick
def test_links_that_lead_nowhere_and_images_in_no_class_folder_are_named(plant_data):
    maize = plant_data / "train" / "Maize"
    (maize / "gone.png").symlink_to(maize / "deleted.png")  # dangling
    (maize / "loop.png").symlink_to(maize / "loop.png")  # a loop: opening it fails, as a dangling one does
    (plant_data / "train" / "Sugar beet (old)").symlink_to(plant_data / "train" / "elsewhere")  # a class folder gone
    shutil.copy(next(maize.glob("*.png")), plant_data / "train" / "stray.png")  # in train/, in no class
    lines, comp = plant_start(plant_data)
    assert lines == [f"skipped 1 images outside the class folders: {plant_data / 'train' / 'stray.png'}",
                     f"skipped 3 links that lead to no file (dangling, or a loop): "
                     f"{maize / 'gone.png'}, {maize / 'loop.png'}, {plant_data / 'train' / 'Sugar beet (old)'}"]
    assert len(comp.layout.train(plant_data, comp.classes)) == 60  # the 5 images of each class, no more


@pytest.mark.quick
def test_training_images_with_no_row_in_the_labels_csv_are_named(tmp_path):
    root = dog_breeds(tmp_path / "dogs")
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    labels.drop([2, 5]).to_csv(root / "labels.csv", index=False)
    (root / "test" / "gone.jpg").symlink_to(root / "test" / "deleted.jpg")
    train = root / "train"
    assert DOGS.notices(root) == [
        f"skipped 1 links that lead to no file (dangling, or a loop): {root / 'test' / 'gone.jpg'}",
        f"skipped 2 training images with no row in {root / 'labels.csv'}: "
        f"{train / (labels['id'][2] + '.jpg')}, {train / (labels['id'][5] + '.jpg')}"]
    assert len(DOGS.train(root, None)) == 22 and len(DOGS.test(root)) == 5
    (root / "labels.csv").write_bytes(b"")  # unreadable: train() says so, in its own error; the notices don't fail
    assert DOGS.notices(root) == [f"skipped 1 links that lead to no file (dangling, or a loop): {root / 'test' / 'gone.jpg'}"]


def zip_csv(src, dest):
    with zipfile.ZipFile(dest, "w") as z:
        z.write(src, "sample_submission.csv")
    src.unlink()


@pytest.mark.quick
@pytest.mark.parametrize("name", ["sampleSubmission.csv", "SampleSubmission.csv", "sample_submission.csv.zip",
                                  "sample_submission.zip"])
def test_the_sample_submission_is_found_under_kaggles_spellings(plant_data, name):
    comp = load("plant-seedlings")
    written = plant_data / "sample_submission.csv"
    expected = pd.read_csv(written, dtype=str)
    if name.endswith(".zip"):
        zip_csv(written, plant_data / name)
    else:
        written.rename(plant_data / name)
    assert sub.sample_file(plant_data, comp.submission) == plant_data / name
    ids = list(comp.layout.test(plant_data)["id"])
    # callers that join data_dir / spec.sample find it too
    sample = sub.read_sample(plant_data / comp.submission.sample, comp.submission, ids, comp.classes)
    assert sample.equals(expected)


@pytest.mark.quick
def test_no_sample_submission_names_the_spellings_tried_and_the_setting(plant_data):
    comp = load("plant-seedlings")
    (plant_data / "sample_submission.csv").rename(plant_data / "my_sample.csv")
    with pytest.raises(PipelineError) as e:
        sub.sample_file(plant_data, comp.submission)
    assert str(e.value) == (f"{plant_data}: no sample submission (tried sample_submission.csv, sampleSubmission.csv, "
                            f"sample_submission.csv.zip, sampleSubmission.csv.zip, sample_submission.zip, "
                            f"sampleSubmission.zip, in any case); name yours with Submission(sample=\"...\") "
                            f"in the competition's competition.py")
    # a name the definition chose is the only one looked for
    (plant_data / "my_sample.csv").rename(plant_data / "sampleSubmission.csv")
    planet = load("planet-understanding-the-amazon-from-space").submission
    with pytest.raises(PipelineError) as e:
        sub.sample_file(plant_data, planet)
    assert str(e.value) == (f"{plant_data / 'sample_submission_v2.csv'}: sample submission missing; download the "
                            f"competition data again, or fix Submission(sample=\"...\") in the competition's "
                            f"competition.py")


@pytest.mark.quick
def test_the_scaffold_shows_the_sample_setting(workdir):
    folder = new("my-comp", "csv", workdir / "competitions")
    text = (folder / "competition.py").read_text()
    assert 'submission = Submission(id_column="id", label_column="label", sample="sample_submission.csv")' in text
    assert "# sample: the sample submission's file in the data folder" in text
    assert load("my-comp").submission.sample == "sample_submission.csv"
