"""Mixup and cutmix (mixing.py): what a mixed batch is, and the loss a mixed step takes."""
import pytest
import torch
from torch import nn

from pipeline import PipelineError
from pipeline.core.device import Device
from pipeline.recipe import Phase, Recipe, validate
from pipeline.training.epochs import make_optimizer, train_one_epoch
from pipeline.training.mixing import Mixer
from pipeline.training.tasks import CLASSIFICATION


def flat_images(n=8, size=16):
    """Image i is the constant i: any pixel tells whose it is."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, size, size).clone()


@pytest.mark.quick
def test_mixup_blends_each_image_with_its_partner_in_the_drawn_share():
    x = torch.randn(8, 3, 16, 16)
    mixed, own, partner = Mixer(0.4, 0.0, seed=3)(x)
    assert sorted(partner.tolist()) == list(range(8)) and 0 < own < 1
    torch.testing.assert_close(mixed, own * x + (1 - own) * x[partner])
    again = Mixer(0.4, 0.0, seed=3)(x)  # seeded: a resumed epoch mixes the same way
    assert torch.equal(again[0], mixed) and again[1] == own


@pytest.mark.quick
def test_cutmix_pastes_one_box_of_the_partner_with_the_partners_share_of_the_area():
    x = flat_images()
    for seed in range(20):
        mixed, own, partner = Mixer(0.0, 1.0, seed=seed)(x)
        from_partner = mixed != x  # where image i shows its partner (an image that is not itself)
        moved = [i for i in range(8) if partner[i] != i]
        for i in moved:
            assert torch.equal(mixed[i][from_partner[i]], x[partner[i]][from_partner[i]])
            assert from_partner[i].float().mean().item() == pytest.approx(1 - own)
        box = from_partner[moved[0], 0]
        rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
        if len(rows):  # one rectangle, the same in every image
            assert box[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
            assert all(torch.equal(from_partner[i, 0], box) for i in moved)


@pytest.mark.quick
def test_with_both_each_batch_takes_one_of_them():
    mixer, x = Mixer(0.4, 1.0, seed=0), flat_images()
    kinds = {bool((mixer(x)[0] % 1 == 0).all()) for _ in range(30)}  # cutmix keeps whole numbers
    assert kinds == {True, False}


@pytest.mark.quick
def test_a_mixed_step_takes_each_label_in_its_share():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    x, y = torch.randn(6, 3, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    mixed, own, partner = Mixer(0.4, 0.0, seed=5)(x)
    with torch.no_grad():
        out = model(mixed)
    expected = own * CLASSIFICATION.loss(out, y, 0.1) + (1 - own) * CLASSIFICATION.loss(out, y[partner], 0.1)
    phase = Phase(size=4, epochs=1, lr=0.0)
    optimizer = make_optimizer({"head": list(model.parameters())}, phase, 0.0)
    rows = train_one_epoch(model, [(x, y)], optimizer, phase=phase, epoch=0,
                           prepare=lambda b: b, dev=Device.pick("cpu"), task=CLASSIFICATION, label_smoothing=0.1, desc="test",
                           mix=Mixer(0.4, 0.0, seed=5))
    assert rows[0]["loss"] == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.quick
def test_a_negative_alpha_is_refused():
    recipe = Recipe(phases=(Phase(size=24, epochs=1, lr=1e-3),), mixup=-0.2)
    with pytest.raises(PipelineError, match="mixup=-0.2, cutmix=0.0; each an alpha > 0"):
        validate(recipe, ["early", "late", "head"], "test")
