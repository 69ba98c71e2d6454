"""Pre-processed pixels kept in memory (hf_w2s.trainer.pixel_cache, WeakToStrongConfig.pixel_cache_mb): each image is
decoded and pre-processed once instead of every epoch, and training is exactly the same, step for step."""

import pytest
import torch
from testing_utils import block_dataset, tiny_model, training_args

from hf_w2s import WeakToStrongTrainer
from hf_w2s.modeling import tiny_image_processor


class CountingProcessor:
    """The tiny image processor, counting the images it is given."""

    def __init__(self):
        self.inner = tiny_image_processor(image_size=8)
        self.images = 0

    def __call__(self, images=None, **kw):
        self.images += len(images)
        return self.inner(images=images, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def train(tmp_path, mb, epochs=3):
    train_set = block_dataset(40, seed=3, weak_accuracy=0.75)
    eval_set = block_dataset(24, seed=4)
    processor = CountingProcessor()
    args = training_args(tmp_path / str(mb), w2s_loss="adapt_conf", max_steps=-1, num_train_epochs=epochs, seed=0,
                         per_device_train_batch_size=8, per_device_eval_batch_size=64, learning_rate=0.05,
                         eval_strategy="epoch", pixel_cache_mb=mb)
    model = tiny_model("vit", channels=3, width=8, depth=1)
    trainer = WeakToStrongTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                                  processing_class=processor)
    trainer.train()
    metrics = trainer.evaluate()
    return trainer.model.state_dict(), metrics, processor.images


def test_cached_pixels_train_exactly_like_per_batch_preprocessing(tmp_path):
    cached, cached_metrics, cached_images = train(tmp_path, 1024.0)
    plain, plain_metrics, plain_images = train(tmp_path, 0.0)
    assert cached.keys() == plain.keys()
    for name in plain:
        assert torch.equal(cached[name], plain[name]), name
    assert cached_metrics["eval_accuracy"] == plain_metrics["eval_accuracy"]
    assert cached_metrics["eval_loss"] == pytest.approx(plain_metrics["eval_loss"], abs=0)
    # per batch: every image of every epoch (40 x 3) and every evaluation (24 x 3 epochs + 1); cached: each once,
    # plus one image of each dataset whose size sets the memory needed
    assert plain_images == 40 * 3 + 24 * 4
    assert cached_images == 40 + 24 + 2


def test_a_dataset_over_the_budget_is_preprocessed_per_batch(tmp_path):
    # 8 x 8 x 3 float32 pixels = 768 bytes an image: 40 images need 0.03 MiB, over a budget of 0.01 MiB; the size
    # is read from one image of each dataset, then every batch is pre-processed as it is built
    _, _, images = train(tmp_path, 0.01, epochs=1)
    assert images == 1 + 40 + 1 + 24 * 2


def test_a_negative_budget_is_refused():
    from hf_w2s import WeakToStrongConfig

    with pytest.raises(ValueError, match="pixel_cache_mb"):
        WeakToStrongConfig(output_dir="x", pixel_cache_mb=-1.0)
