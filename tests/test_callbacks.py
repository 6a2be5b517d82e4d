"""Per-epoch callbacks and progress inside an epoch."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from diffmm import DiffMMRecommender, InvalidInputError, LightGCNRecommender
from diffmm.callbacks import Callback, StopAfter, TrackMetrics
from diffmm.datasets import make_synthetic

DATA = make_synthetic(n_users=80, n_items=50, random_state=0)
FAST = {"denoiser_hidden_dims": (16,), "embedding_dim": 8, "random_state": 0}


class StopBelow(Callback):
    """Stops once the BPR loss is below a threshold (module level: it pickles)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.seen: list[int] = []

    def on_epoch_end(self, epoch):
        self.seen.append(epoch.number)
        return epoch.record["loss_bpr"] < self.threshold


def stop_at_two(epoch) -> bool:
    return epoch.number >= 2


def test_track_metrics_records_every_epoch_and_the_record(tmp_path):
    track = TrackMetrics(DATA.validation, metrics=("recall", "ndcg"), ks=(10,))
    model = DiffMMRecommender(epochs=3, callbacks=[track], **FAST)
    model.fit(DATA.train, DATA.features, validation_data=DATA.validation)
    assert [h["epoch"] for h in track.history] == [1, 2, 3]
    assert all("ndcg@10" in r for r in model.history_)
    best = track.history[model.best_epoch_ - 1]
    kept = model.evaluate(DATA.validation, metrics=("recall", "ndcg"), ks=(10,))
    assert best["recall@10"] == pytest.approx(kept["recall@10"])
    assert best["ndcg@10"] == pytest.approx(kept["ndcg@10"])


@pytest.mark.parametrize("callback", [StopAfter(epochs=2), stop_at_two], ids=["object", "function"])
def test_a_callback_stops_training_and_the_best_epoch_is_kept(callback):
    model = LightGCNRecommender(epochs=10, random_state=0, callbacks=[callback])
    model.fit(DATA.train, validation_data=DATA.validation)
    assert len(model.history_) == 2 and model.stopped_early_
    assert model.best_epoch_ in (1, 2)


def test_callbacks_survive_clone_pickle_and_save(tmp_path):
    stopper = StopBelow(threshold=10.0)  # stops after the first epoch
    model = DiffMMRecommender(epochs=4, callbacks=[stopper], **FAST).fit(DATA.train, DATA.features)
    assert stopper.seen == [1] and len(model.history_) == 1
    twin = clone(model)
    assert isinstance(twin.callbacks[0], StopBelow) and twin.callbacks[0] is not stopper
    restored = pickle.loads(pickle.dumps(model))
    assert restored.callbacks[0].threshold == 10.0
    np.testing.assert_array_equal(restored.user_factors_, model.user_factors_)
    loaded = DiffMMRecommender.load(model.save(tmp_path / "m.diffmm"))  # code is not saved
    assert loaded.callbacks is None


def test_bad_callbacks_are_refused():
    with pytest.raises(InvalidInputError, match="'callbacks' parameter"):
        LightGCNRecommender(epochs=1, callbacks=["not callable"]).fit(DATA.train)


def test_verbose_shows_each_phase_with_running_losses(capsys):
    DiffMMRecommender(epochs=1, verbose=True, batch_size=32, **FAST).fit(
        DATA.train, DATA.features, validation_data=DATA.validation
    )
    err = capsys.readouterr().err
    for phase in ("denoiser", "generation", "recommender"):
        assert phase in err
    assert "bpr=" in err and "diffusion=" in err
