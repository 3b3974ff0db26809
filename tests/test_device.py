"""`--compile`: the model is compiled in place, so checkpoints keep the plain model's names, and it
trains as the plain model does (to float tolerance: compiled kernels fuse and reorder arithmetic)."""
import pytest
import torch

from pipeline.cli import parser
from pipeline.device import Device
from pipeline.metrics import accuracy
from pipeline.models import create_model
from pipeline.recipe import Phase, Recipe
from pipeline.trainer import fit

from conftest import tiny_data


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
        fit(model, recipe, data, accuracy, tmp_path / str(compiled), key="k", dev=Device.pick("cpu", compiled),
            symmetry="dihedral", log=logs[compiled].append)
        weights[compiled] = torch.load(tmp_path / str(compiled) / "last.pt", weights_only=False)["model"]
    assert weights[True].keys() == weights[False].keys()
    losses = [[float(w.split()[0]) for line in logs[c] for w in line.split("train_loss ")[1:2]] for c in (False, True)]
    assert len(losses[0]) == 2 and losses[0] == pytest.approx(losses[1], rel=1e-3)
