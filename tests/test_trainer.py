"""WeakToStrongTrainer: gradient accumulation, logging, online vs cached supervision, plain-label evaluation."""

import numpy as np
import pytest
import torch
from datasets import ClassLabel
from scripts.tiny_data import weak_model_with_dropout_and_batch_norm
from testing_utils import NAMES, block_dataset, block_images, noisy_weak_logits, training_args

from hf_w2s import WeakToStrongTrainer
from hf_w2s.data.weak_labels import align_to_model, label_dataset
from hf_w2s.modeling import build_model, tiny_image_processor


def config(tmp_path, **kw):
    """The trainer's defaults (AdaptConf, epochs) in a quiet CPU run that saves nothing."""
    return training_args(tmp_path, **{"w2s_loss": "adapt_conf", "max_steps": -1, "seed": 0,
                                      "per_device_eval_batch_size": 64, **kw})


PROC = tiny_image_processor(image_size=8)


def vit(seed=0, names=NAMES):
    return build_model("vit", names, image_size=8, width=8, depth=1, seed=seed)


@pytest.mark.parametrize("loss", ["adapt_conf", "weak_hard"])
def test_gradient_accumulation_matches_full_batch(tmp_path, loss):
    images, labels = block_images(8, seed=1)
    ds = block_dataset(8, seed=1, weak_logits=noisy_weak_logits(labels))
    weights = []
    for bs, ga in [(8, 1), (4, 2)]:
        model = vit(seed=0)
        args = config(tmp_path, w2s_loss=loss, per_device_train_batch_size=bs, gradient_accumulation_steps=ga,
                      max_steps=1, learning_rate=0.1, optim="sgd", lr_scheduler_type="constant",
                      max_grad_norm=0.0)
        WeakToStrongTrainer(model=model, args=args, train_dataset=ds, processing_class=PROC).train()
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    init = torch.cat([p.detach().flatten() for p in vit(seed=0).parameters()])
    step_full, step_ga = weights[0] - init, weights[1] - init
    assert step_full.norm() > 1e-4
    assert torch.allclose(step_full, step_ga, atol=1e-6, rtol=1e-4), (step_full.norm(), step_ga.norm())


def test_training_logs_components_and_improves_accuracy(tmp_path):
    train_images, train_labels = block_images(256, seed=2)
    train = block_dataset(256, seed=2, weak_logits=noisy_weak_logits(train_labels, 0.7, seed=2))
    test = block_dataset(128, seed=3)  # images and true labels only, no weak logits
    model = build_model("resnet", NAMES, image_size=8, width=8, depth=1, seed=0)
    args = config(tmp_path, w2s_loss="adapt_conf", per_device_train_batch_size=32, num_train_epochs=6,
                  learning_rate=5e-3, logging_steps=8)
    trainer = WeakToStrongTrainer(model=model, args=args, train_dataset=train, eval_dataset=test, processing_class=PROC)
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_accuracy"] > before["eval_accuracy"] + 0.3
    assert after["eval_accuracy"] > 0.85  # better than its 70 %-accurate supervisor
    # plain (image, label) evaluation: the eval loss is cross-entropy on the true labels, computed here by hand
    trainer.model.eval()
    with torch.no_grad():
        s = trainer.model(pixel_values=pixel_values(test["image"])).logits
    truth = torch.tensor(test["label"])
    ce = -torch.log_softmax(s, -1)[torch.arange(len(truth)), truth]
    assert after["eval_loss"] == pytest.approx(ce.mean().item(), rel=1e-4)
    assert after["eval_ce_gt"] == pytest.approx(ce.mean().item(), rel=1e-4)
    assert after["eval_accuracy"] == pytest.approx((s.argmax(-1) == truth).float().mean().item())
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged and all({"kd", "ce_self", "a", "agreement", "loss_w2s"} <= set(h) for h in logged)
    assert all(0 < h["a"] <= 0.5 for h in logged)
    preds = trainer.predict(test)
    assert preds.predictions.shape == (128, 4)
    assert preds.metrics["test_accuracy"] == pytest.approx(after["eval_accuracy"])


def test_eval_with_weak_logits_reports_agreement(tmp_path):
    ds = block_dataset(32, seed=4, weak_logits=noisy_weak_logits(block_images(32, seed=4)[1]))
    trainer = WeakToStrongTrainer(model=vit(), args=config(tmp_path), eval_dataset=ds, processing_class=PROC)
    m = trainer.evaluate(metric_key_prefix="test")
    assert {"test_agreement", "test_a", "test_kd", "test_accuracy"} <= set(m)
    with torch.no_grad():
        pv = torch.stack([torch.as_tensor(np.asarray(PROC(im.convert("RGB"), return_tensors="np")["pixel_values"][0]))
                          for im in ds["image"]])
        s = trainer.model(pixel_values=pv).logits
    expected = (s.argmax(-1).numpy() == np.asarray(ds["weak_logits"]).argmax(-1)).mean()
    assert m["test_agreement"] == pytest.approx(expected)


ROTATED = NAMES[1:] + NAMES[:1]  # b, c, d, a: a 4-cycle, not its own inverse (a reversal or a swap would be)


def rotated_names(ds):
    """The same examples with the ClassLabel's names in the order ROTATED (each row keeps its class *name*)."""
    out = ds.map(lambda b: {"label": [ROTATED.index(NAMES[y]) for y in b["label"]]}, batched=True)
    return out.cast_column("label", ClassLabel(names=ROTATED))


def test_ground_truth_is_matched_to_the_student_by_name(tmp_path):
    ds = block_dataset(64, seed=8)
    rev = rotated_names(ds)
    assert rev[0]["label"] != ds[0]["label"] and rev.features["label"].names[rev[0]["label"]] == NAMES[ds[0]["label"]]
    model = build_model("resnet", NAMES, image_size=8, width=8, depth=1, seed=0)
    tr = WeakToStrongTrainer(model=model, args=config(tmp_path), eval_dataset={"orig": ds, "rev": rev},
                             processing_class=PROC)
    assert tr.eval_dataset["rev"]["label"] == ds["label"]
    assert tr.eval_dataset["rev"].features["label"].names == NAMES
    assert tr.evaluate(tr.eval_dataset["orig"])["eval_accuracy"] == pytest.approx(
        tr.evaluate(tr.eval_dataset["rev"])["eval_accuracy"])
    generic = build_model("resnet", [f"LABEL_{i}" for i in range(4)], image_size=8, width=8, depth=1, seed=0)
    assert align_to_model(rev, generic) is rev  # a model without class names: nothing to match by
    other = ds.cast_column("label", ClassLabel(names=["a", "b", "c", "zebra"]))
    with pytest.raises(ValueError, match=r"missing from the dataset's 'label' column: \['d'\]"):
        WeakToStrongTrainer(model=model, args=config(tmp_path), train_dataset=other.add_column(
            "weak_logits", np.zeros((64, 4), dtype=np.float32).tolist()), processing_class=PROC)


def test_eval_dataset_given_as_a_path_loads_its_split(tmp_path):
    from datasets import DatasetDict

    DatasetDict({"train": block_dataset(8, seed=9), "test": block_dataset(24, seed=10),
                 "validation": block_dataset(16, seed=11)}).save_to_disk(tmp_path / "data")
    tr = WeakToStrongTrainer(model=vit(), args=config(tmp_path), eval_dataset=str(tmp_path / "data"),
                             processing_class=PROC)
    assert len(tr.eval_dataset) == 24 and "eval_accuracy" in tr.evaluate()
    tr = WeakToStrongTrainer(model=vit(), args=config(tmp_path, eval_dataset_split="validation"),
                             eval_dataset=str(tmp_path / "data"), processing_class=PROC)
    assert len(tr.eval_dataset) == 16
    with pytest.raises(ValueError, match=r"has no split 'dev'; its splits: \['test', 'train', 'validation'\]"):
        WeakToStrongTrainer(model=vit(), args=config(tmp_path, eval_dataset_split="dev"),
                            eval_dataset=str(tmp_path / "data"), processing_class=PROC)


def test_online_weak_model_equals_cached_logits_and_remaps_names(tmp_path):
    images, labels = block_images(16, seed=5)
    base = block_dataset(16, seed=5)
    weak = vit(seed=7)
    cached = label_dataset(base, weak, PROC)
    # a weak model whose labels are in the order ROTATED: the same function, output k is class ROTATED[k]
    rows = [NAMES.index(name) for name in ROTATED]
    weak_rev = vit(seed=7, names=ROTATED)
    weak_rev.load_state_dict(weak.state_dict())
    with torch.no_grad():
        weak_rev.classifier.weight.copy_(weak.classifier.weight[rows])
        weak_rev.classifier.bias.copy_(weak.classifier.bias[rows])
    losses = []
    for ds, weak_model in [(cached, None), (base, weak), (base, weak_rev)]:
        model = vit(seed=0)
        args = config(tmp_path, per_device_train_batch_size=16, max_steps=1, learning_rate=0.1, optim="sgd",
                      logging_steps=1)
        tr = WeakToStrongTrainer(model=model, args=args, train_dataset=ds, processing_class=PROC, weak_model=weak_model)
        tr.train()
        losses.append(tr.state.log_history[0]["loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert losses[0] == pytest.approx(losses[2], rel=1e-5)


def test_online_weak_model_with_other_label_names_is_refused(tmp_path):
    weak = vit(names=["a", "b", "c", "zebra"])
    with pytest.raises(ValueError, match=r"missing from the weak model: \['d'\]"):
        WeakToStrongTrainer(model=vit(), args=config(tmp_path), train_dataset=block_dataset(4),
                            processing_class=PROC, weak_model=weak)


def test_missing_supervision_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="no 'weak_logits' column"):
        WeakToStrongTrainer(model=vit(), args=config(tmp_path), train_dataset=block_dataset(4), processing_class=PROC)
    ds = block_dataset(4, weak_logits=np.zeros((4, 4))).remove_columns("label")
    with pytest.raises(ValueError, match="needs true labels"):
        WeakToStrongTrainer(model=vit(), args=config(tmp_path, gt_loss_weight=1.0), train_dataset=ds,
                            processing_class=PROC)
    wide = block_dataset(4).add_column("weak_logits", np.zeros((4, 5), dtype=np.float32).tolist())
    with pytest.raises(ValueError, match="5 values per example but the student has 4 labels"):
        WeakToStrongTrainer(model=vit(), args=config(tmp_path), train_dataset=wide, processing_class=PROC)


def test_schedule_progress_comes_from_trainer_state(tmp_path):
    tr = WeakToStrongTrainer(model=vit(), args=config(tmp_path, w2s_loss="aug_conf"), processing_class=PROC)
    tr.state.max_steps, tr.state.global_step = 100, 15
    assert tr.training_progress == pytest.approx(0.15)


@pytest.mark.parametrize(
    "kw,msg",
    [({"w2s_loss": "nope"}, r"w2s_loss must be one of \['adapt_conf', .*got 'nope'"),
     ({"confidence_temperature": 0.0}, "confidence_temperature must be > 0"),
     ({"kd_temperature": -1.0}, "kd_temperature must be > 0"), ({"a_ramp": 1.5}, r"a_ramp must be within \[0, 1\]"),
     ({"a_max": -0.1}, "a_max must be within"), ({"gt_loss_weight": -1.0}, "gt_loss_weight must be >= 0")],
)
def test_config_validation(tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg):
        config(tmp_path, **kw)


def hand_kd(s, w, tau):
    """tau^2 * KL(softmax(w / tau) || softmax(s / tau)) per row, written out with torch primitives."""
    p_w = torch.softmax(w / tau, -1)
    return tau**2 * (p_w * (torch.log(p_w) - torch.log_softmax(s / tau, -1))).sum(-1)


def pixel_values(images, processor=PROC):
    return torch.as_tensor(np.stack([processor(im.convert("RGB"), return_tensors="np")["pixel_values"][0]
                                     for im in images]))


def test_one_step_follows_the_weighted_loss_by_hand(tmp_path):
    """One SGD step of the trainer = one step on gt_loss_weight * CE(s, y) + weak_loss_weight * KD(s, w) written
    out in the test, with weights that are neither 0 nor 1 (a trainer that ignored either would step elsewhere)."""
    images, labels = block_images(8, seed=12)
    weak = noisy_weak_logits(labels, 0.5, seed=12)
    ds = block_dataset(8, seed=12, weak_logits=weak)
    lr, gt_w, weak_w, tau = 0.5, 0.3, 1.7, 2.0
    args = config(tmp_path, w2s_loss="kd", kd_temperature=tau, gt_loss_weight=gt_w, weak_loss_weight=weak_w,
                  per_device_train_batch_size=8, max_steps=1, learning_rate=lr, optim="sgd",
                  lr_scheduler_type="constant", max_grad_norm=0.0, logging_steps=1)
    trained = vit(seed=0)
    tr = WeakToStrongTrainer(model=trained, args=args, train_dataset=ds, processing_class=PROC)
    tr.train()

    ref = vit(seed=0)
    s = ref(pixel_values=pixel_values(images)).logits
    w = torch.tensor(weak, dtype=torch.float32)
    ce = -torch.log_softmax(s, -1)[torch.arange(8), torch.as_tensor(labels)]
    loss = gt_w * ce.mean() + weak_w * hand_kd(s, w, tau).mean()
    loss.backward()
    assert tr.state.log_history[0]["loss"] == pytest.approx(loss.item(), rel=1e-4)
    assert tr.state.log_history[0]["ce_gt"] == pytest.approx(ce.mean().item(), rel=1e-4)
    moved = 0.0
    for (name, p), (_, q) in zip(ref.named_parameters(), trained.named_parameters()):
        torch.testing.assert_close(q.detach(), p.detach() - lr * p.grad, rtol=1e-4, atol=1e-6, msg=name)
        moved = max(moved, (lr * p.grad).abs().max().item())
    assert moved > 1e-3


def test_online_weak_model_uses_its_own_preprocessing(tmp_path):
    """An online weak model with its own image processor (and dropout and batch norm) sees the weak pixel values in
    evaluation mode: its loss equals the loss on the logits label_dataset cached with that processor, and differs from
    the loss on the student's pixels."""
    base = block_dataset(16, seed=5)
    weak = weak_model_with_dropout_and_batch_norm(NAMES, seed=7)  # must run in eval mode online as when cached
    weak_proc = tiny_image_processor(image_size=8)
    weak_proc.image_mean, weak_proc.image_std = [0.2, 0.3, 0.4], [0.25, 0.2, 0.3]
    images = list(base["image"])
    assert not torch.allclose(pixel_values(images, weak_proc), pixel_values(images))
    cached = label_dataset(base, weak, weak_proc)
    with torch.no_grad():
        on_student_pixels = weak.eval()(pixel_values=pixel_values(images)).logits
    on_wrong = block_dataset(16, seed=5, weak_logits=on_student_pixels.numpy())
    losses = []
    for ds, weak_model in [(cached, None), (base, weak), (on_wrong, None)]:
        args = config(tmp_path, w2s_loss="kd", per_device_train_batch_size=16, max_steps=1, learning_rate=0.1,
                      optim="sgd", logging_steps=1)
        tr = WeakToStrongTrainer(model=vit(seed=0), args=args, train_dataset=ds, processing_class=PROC,
                                 weak_model=weak_model, weak_processing_class=weak_proc if weak_model else None)
        tr.train()
        losses.append(tr.state.log_history[0]["loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert abs(losses[2] - losses[0]) > 1e-3 * losses[0]


def resnet(seed=0):
    return build_model("resnet", NAMES, image_size=8, width=8, depth=1, seed=seed)


def test_channels_last_trains_the_same_model_and_saves_a_plain_checkpoint(tmp_path):
    from transformers import AutoModelForImageClassification

    ds = block_dataset(32, seed=3)
    trained = {}
    for flag in (False, True):
        model, weak = resnet(seed=0), resnet(seed=1)
        args = config(tmp_path / str(flag), per_device_train_batch_size=8, max_steps=3, learning_rate=0.05,
                      channels_last=flag, w2s_loss="kd")
        trainer = WeakToStrongTrainer(model=model, args=args, train_dataset=ds, processing_class=PROC,
                                      weak_model=weak)
        convs = [m.weight for m in (model, weak) for m in m.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(w.is_contiguous(memory_format=torch.channels_last) == flag for w in convs)
        assert all(w.is_contiguous() != flag for w in convs if w.shape[1] > 1 and w.shape[2] > 1)
        trainer.train()
        trained[flag] = model
    # the same training: only the order of the sums in the convolutions differs
    for (name, a), b in zip(trained[False].state_dict().items(), trained[True].state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
    # the channels-last student saves as an ordinary checkpoint that classifies exactly as the model in memory
    trained[True].save_pretrained(tmp_path / "saved")
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "saved").eval()
    x = pixel_values(block_images(4, seed=9)[0])
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).logits, trained[True].eval()(pixel_values=x).logits)
