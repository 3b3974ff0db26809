import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.recipe import Phase, cycle_ends, differential, sgdr_cycle_epochs
from pipeline.training.schedules import lr_at, one_cycle


@pytest.mark.quick
def test_one_cycle_lr_and_momentum_shape():
    ts = np.linspace(0, 1, 1001)[:-1]
    lr, mom = np.array([one_cycle(t) for t in ts]).T
    peak = lr.argmax()
    assert ts[peak] == pytest.approx(0.25, abs=1e-3)
    assert lr[0] == pytest.approx(1 / 25) and lr.max() == pytest.approx(1.0, abs=1e-4)
    assert lr[-1] < 1e-3
    assert (np.diff(lr[: peak + 1]) >= 0).all() and (np.diff(lr[peak:]) <= 0).all()
    # cyclical momentum: 0.95 -> 0.85 at the lr peak -> back to 0.95
    assert mom[0] == pytest.approx(0.95) and mom[peak] == pytest.approx(0.85, abs=1e-4)
    assert mom[-1] == pytest.approx(0.95, abs=1e-4)
    assert mom.argmin() == peak


@pytest.mark.quick
def test_sgdr_cycles_grow_with_cycle_mult_and_restart():
    assert sgdr_cycle_epochs(7, 1, 2) == [1, 2, 4]
    assert sgdr_cycle_epochs(3, 1, 1) == [1, 1, 1]
    phase = Phase(size=32, epochs=7, lr=1.0, schedule="sgdr", cycle_len=1, cycle_mult=2)
    assert cycle_ends(phase) == [1, 3, 7]
    spe = 10
    lrs = [lr_at(phase, s, spe)[0] for s in range(7 * spe)]
    restarts = [s for s in range(1, len(lrs)) if lrs[s] > lrs[s - 1]]
    assert restarts == [10, 30]              # a new cycle starts at epochs 1 and 3
    assert lrs[0] == lrs[10] == lrs[30] == 1.0
    assert lrs[9] < 0.03 and lrs[29] < 0.01 and lrs[-1] < 0.002  # the low point at each cycle's end
    assert lr_at(phase, 0, spe)[1] is None    # sgdr leaves momentum alone


@pytest.mark.quick
def test_sgdr_epochs_must_fill_whole_cycles():
    with pytest.raises(PipelineError, match="1, 3, 7"):
        sgdr_cycle_epochs(4, 1, 2)


@pytest.mark.quick
def test_differential_rates():
    assert differential(9e-3) == pytest.approx((1e-3, 3e-3, 9e-3))
