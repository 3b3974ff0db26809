"""`--compile`: the model is compiled in place, so checkpoints keep the plain model's names, and it
trains as the plain model does (to float tolerance: compiled kernels fuse and reorder arithmetic).
On a CPU, freed activations' memory is kept for the next batch rather than faulted in again."""
import subprocess
import sys

import pytest
import torch

from pipeline.cli import parser
from pipeline.core.device import Device
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe
from pipeline.training.models import create_model
from pipeline.training.trainer import fit

from conftest import tiny_data


@pytest.mark.quick
def test_the_flag_reaches_the_device_and_compiles_in_place():
    assert parser().parse_args(["run", "x", "--compile"]).compile
    assert not parser().parse_args(["run", "x"]).compile
    model = create_model("test_efficientnet", 3, "none")
    names = list(model.state_dict())
    Device.pick("cpu", compile=True).place(model)
    compiled = model._compiled_call_impl
    assert compiled is not None and list(model.state_dict()) == names
    Device.pick("cpu", compile=True).place(model)  # a later phase places it again: compiled once
    assert model._compiled_call_impl is compiled
    Device.pick("cpu").place(plain := create_model("test_efficientnet", 3, "none"))
    assert plain._compiled_call_impl is None


@pytest.mark.slow  # compiling takes a minute or two on a CPU
def test_a_compiled_model_trains_as_the_plain_one_does(tmp_path):
    data = tiny_data(tmp_path)
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6, seed=3,
                    phases=(Phase(size=24, epochs=2, lr=1e-2),))
    logs, weights = {}, {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = create_model("test_efficientnet", 3, "none")
        logs[compiled] = []
        fit(model, recipe, data, accuracy, tmp_path / str(compiled), key="k", dev=Device.pick("cpu", compiled), log=logs[compiled].append)
        weights[compiled] = torch.load(tmp_path / str(compiled) / "last.pt", weights_only=False)["model"]
    assert weights[True].keys() == weights[False].keys()
    losses = [[float(w.split()[0]) for line in logs[c] for w in line.split("train_loss ")[1:2]] for c in (False, True)]
    assert len(losses[0]) == 2 and losses[0] == pytest.approx(losses[1], rel=1e-3)


def views_of(img: torch.Tensor) -> list[bytes]:
    """The 8 flips and turns of an [H, W, C] image."""
    flipped = [img, img.flip(1), img.flip(0), img.flip(0, 1)]
    return [v.contiguous().numpy().tobytes() for v in flipped + [v.transpose(0, 1) for v in flipped]]


@pytest.mark.quick
def test_flips_on_the_device_give_each_image_a_random_view_its_symmetry_allows():
    from pipeline.vision.transforms import random_flips
    batch = torch.randint(0, 256, (64, 8, 8, 3), dtype=torch.uint8)
    for symmetry, allowed in (("dihedral", 8), ("hflip", 2), ("none", 1)):
        out = random_flips(symmetry, seed=5)(batch)
        seen = [views_of(img).index(o.contiguous().numpy().tobytes()) for img, o in zip(batch, out)]
        assert max(seen) < allowed and len(set(seen)) == allowed  # every allowed view, no other
        assert torch.equal(random_flips(symmetry, seed=5)(batch), out)  # seeded
    assert not torch.equal(random_flips("dihedral", seed=6)(batch), random_flips("dihedral", seed=5)(batch))


@pytest.mark.quick
def test_a_device_that_flips_trains_deterministically_with_the_loader_spared_its_flips(tmp_path):
    from pipeline.training.trainer import setup_phase
    import albumentations as A
    data = tiny_data(tmp_path)
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6, seed=3,
                    phases=(Phase(size=24, epochs=2, lr=1e-2),))
    dev = Device.pick("cpu")
    dev.flips_on_device = True  # as on a GPU
    setup = setup_phase(create_model("test_efficientnet", 3, "none"), recipe, 0, data, dev=dev)
    assert not any(isinstance(t, (A.HorizontalFlip, A.RandomRotate90)) for t in setup.train_ds.augment.transforms)
    assert setup.train_prepare(0) is not setup.prepare
    weights = []
    for name in ("a", "b"):
        torch.manual_seed(0)
        model = create_model("test_efficientnet", 3, "none")
        fit(model, recipe, data, accuracy, tmp_path / name, key="k", dev=dev, log=lambda *a: None)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


FAULTS = """
import resource, sys, torch
from pipeline.core.device import Device
if sys.argv[1] == "cpu":
    Device.pick("cpu")
x, w = torch.rand(8, 16, 150, 150), torch.rand(64, 16, 3, 3)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # three 46 MB tensors (past glibc's largest mmap threshold), made and freed
    a = torch.nn.functional.conv2d(x, w, padding=1)
    b = a.relu() * 2
    del a, b
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_cpu_device_keeps_freed_memory_instead_of_faulting_it_in_each_batch():
    def faults(device):
        return int(subprocess.run([sys.executable, "-c", FAULTS, device], capture_output=True, text=True,
                                  check=True).stdout)
    default, kept = faults("none"), faults("cpu")
    # a pass makes 138 MB (34,000 pages): glibc's default faults them in every pass, kept memory once
    assert default > 100_000 and kept < default / 5
