"""Each loss against values computed by hand (math on Python floats, not the library's own helpers)."""

import math

import pytest
import torch

from hf_w2s import LOSSES, compute_w2s_loss
from hf_w2s.losses import adaptive_confidence

S = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]
W = [[0.5, 1.5, 0.0], [0.2, 0.1, 2.0]]
Y = [0, 2]


def softmax(row, t=1.0):
    m = max(x / t for x in row)
    e = [math.exp(x / t - m) for x in row]
    z = sum(e)
    return [x / z for x in e]


def ce(row, k):
    return -math.log(softmax(row)[k])


def kl_kd(s_row, w_row, tau):
    ps, pw = softmax(s_row, tau), softmax(w_row, tau)
    return tau * tau * sum(p * (math.log(p) - math.log(q)) for p, q in zip(pw, ps))


def argmax(row):
    return max(range(len(row)), key=lambda i: row[i])


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def per_sample(name, **kw):
    return LOSSES[name](t(S), t(W), **kw).loss.tolist()


def test_registry_names_are_public_api():
    assert {"weak_hard", "weak_soft", "kd", "aug_conf", "aux_conf", "aux_conf_multiclass", "product", "adapt_conf",
            "ground_truth"} <= set(LOSSES)


def test_weak_hard():
    expected = [ce(s, argmax(w)) for s, w in zip(S, W)]
    assert per_sample("weak_hard") == pytest.approx(expected, rel=1e-5)


def test_weak_soft():
    expected = [-sum(p * math.log(q) for p, q in zip(softmax(w), softmax(s))) for s, w in zip(S, W)]
    assert per_sample("weak_soft") == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0])
def test_kd(tau):
    expected = [kl_kd(s, w, tau) for s, w in zip(S, W)]
    assert per_sample("kd", kd_temperature=tau) == pytest.approx(expected, rel=1e-5)


def test_ground_truth():
    out = LOSSES["ground_truth"](t(S), None, labels=torch.tensor(Y))
    assert out.loss.tolist() == pytest.approx([ce(s, y) for s, y in zip(S, Y)], rel=1e-5)
    with pytest.raises(ValueError, match="true labels"):
        LOSSES["ground_truth"](t(S), None, labels=None)


@pytest.mark.parametrize("T", [0.5, 4.0])
@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_adapt_conf_matches_hand_computation(T, tau):
    expected, expected_a = [], []
    for s, w in zip(S, W):
        ce_self, ce_weak = ce(s, argmax(s)), ce(s, argmax(w))
        a = math.exp(ce_self / T) / (math.exp(ce_self / T) + math.exp(ce_weak / T))
        expected_a.append(a)
        expected.append((1 - a) * kl_kd(s, w, tau) + a * ce_self)
    out = LOSSES["adapt_conf"](t(S), t(W), confidence_temperature=T, kd_temperature=tau)
    assert out.loss.tolist() == pytest.approx(expected, rel=1e-5)
    assert out.components["a"].tolist() == pytest.approx(expected_a, rel=1e-5)


def test_adapt_conf_a_range_and_agreement():
    torch.manual_seed(0)
    s, w = torch.randn(256, 10) * 3, torch.randn(256, 10) * 3
    w[:64] = s[:64] + 0.1  # same argmax on the first quarter (almost surely)
    a = adaptive_confidence(s, w, 0.5)
    assert torch.all(a > 0) and torch.all(a <= 0.5)
    agree = s.argmax(-1) == w.argmax(-1)
    assert agree[:64].all()
    assert torch.allclose(a[agree], torch.full_like(a[agree], 0.5))
    assert torch.all(a[~agree] < 0.5)


def test_adapt_conf_a_carries_no_gradient():
    s = t(S).requires_grad_(True)
    out = LOSSES["adapt_conf"](s, t(W), confidence_temperature=0.5)
    assert not out.components["a"].requires_grad
    out.loss.sum().backward()
    # same gradient as with a plugged in as a constant
    a = out.components["a"].detach()
    s2 = t(S).requires_grad_(True)
    kd = LOSSES["kd"](s2, t(W)).loss
    ce_self = torch.nn.functional.cross_entropy(s2, s2.detach().argmax(-1), reduction="none")
    ((1 - a) * kd + a * ce_self).sum().backward()
    assert torch.allclose(s.grad, s2.grad, atol=1e-6)


def test_adapt_conf_warmup_scales_a():
    full = LOSSES["adapt_conf"](t(S), t(W), a_warmup=0.0).components["a"]
    half = LOSSES["adapt_conf"](t(S), t(W), a_warmup=0.5, progress=0.25).components["a"]
    done = LOSSES["adapt_conf"](t(S), t(W), a_warmup=0.5, progress=0.75).components["a"]
    assert torch.allclose(half, full * 0.5) and torch.allclose(done, full)


def test_aug_conf_ramp():
    kd = [kl_kd(s, w, 1.0) for s, w in zip(S, W)]
    ce_self = [ce(s, argmax(s)) for s in S]
    for progress, a in [(0.0, 0.0), (0.15, 0.25), (0.3, 0.5), (0.9, 0.5)]:
        got = per_sample("aug_conf", a_max=0.5, a_ramp=0.3, progress=progress)
        assert got == pytest.approx([(1 - a) * k + a * c for k, c in zip(kd, ce_self)], rel=1e-5), progress
    # no ramp: a fixed mix from the start
    got = per_sample("aug_conf", a_max=0.5, a_ramp=0.0, progress=0.0)
    assert got == pytest.approx([0.5 * k + 0.5 * c for k, c in zip(kd, ce_self)], rel=1e-5)


def quantile(values, q):
    """torch.quantile's default (linear interpolation between the two nearest order statistics), by hand."""
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def openai_logconf(s_rows, w_rows, step_frac, aux_coef=0.5, warmup_frac=0.1):
    """openai/weak-to-strong's logconf_loss_fn written out on Python floats: the batch-mean loss."""
    coef = aux_coef * (1.0 if step_frac > warmup_frac else step_frac)
    preds = [softmax(r) for r in s_rows]
    weak = [softmax(r) for r in w_rows]
    mean_weak1 = sum(w[1] for w in weak) / len(weak)
    threshold = quantile([p[0] for p in preds], mean_weak1)
    total = 0.0
    for p, w in zip(preds, weak):
        hard = [1.0, 0.0] if p[0] >= threshold else [0.0, 1.0]
        target = [wi * (1 - coef) + hi * coef for wi, hi in zip(w, hard)]
        total += -sum(t_ * math.log(pi) for t_, pi in zip(target, p))
    return total / len(preds)


S2 = [[0.3, -0.2], [1.2, 0.4], [-0.5, 0.9], [0.0, 0.1], [2.0, -1.0], [-1.5, -0.2]]
W2 = [[1.0, -1.0], [0.2, 0.3], [-2.0, 1.0], [0.5, 0.0], [1.5, 0.5], [-0.3, 0.8]]


@pytest.mark.parametrize("progress", [0.0, 0.05, 0.1, 0.10001, 0.5, 1.0])
def test_aux_conf_is_openai_logconf_loss(progress):
    got, _ = compute_w2s_loss("aux_conf", t(S2), t(W2), progress=progress)
    assert got.item() == pytest.approx(openai_logconf(S2, W2, progress), rel=1e-5)


def test_aux_conf_warmup_jumps_at_ten_percent():
    coefs = [LOSSES["aux_conf"](t(S2), t(W2), progress=p).components["a"][0].item() for p in (0.05, 0.1, 0.1001)]
    # aux_coef 0.5: 0.5 * 0.05, 0.5 * 0.1 (still warming up at exactly 10 %), then 0.5 at once
    assert coefs == pytest.approx([0.025, 0.05, 0.5], rel=1e-6)
    assert LOSSES["aux_conf"](t(S2), t(W2), progress=0.05, a_max=0.3, aux_warmup=0.0).components["a"][0] == \
        pytest.approx(0.3)


def test_aux_conf_binary_threshold_matches_weak_balance():
    # student's class-1 probabilities rise along the batch; weak labels say 1/4 of the batch is class 1
    s = torch.tensor([[0.0, x] for x in (-3.0, -2.0, -1.0, 0.5, 1.0, 2.0, 2.5, 3.0)])
    w = torch.tensor([[5.0, -5.0]] * 6 + [[-5.0, 5.0]] * 2)
    out = LOSSES["aux_conf"](s, w, a_max=1.0, aux_warmup=0.0)
    # argmax would harden 5 examples to class 1; the balance-matching threshold hardens only the top 2
    hardened = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    expected = torch.nn.functional.cross_entropy(s, hardened, reduction="none")
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_aux_conf_refuses_more_than_two_classes_naming_the_multiclass_loss():
    with pytest.raises(ValueError, match="aux_conf_multiclass"):
        compute_w2s_loss("aux_conf", t(S), t(W))


def test_aux_conf_multiclass_is_aux_conf_for_two_classes():
    torch.manual_seed(0)
    s, w = torch.randn(64, 2) * 2, torch.randn(64, 2) * 2
    for progress in (0.05, 0.7):
        a = LOSSES["aux_conf"](s, w, progress=progress).loss
        b = LOSSES["aux_conf_multiclass"](s, w, progress=progress).loss
        assert torch.allclose(a, b, atol=1e-6)


def test_aux_conf_multiclass_hardens_by_per_class_thresholds_not_argmax():
    # the student leans to class 0 everywhere; the weak labels are balanced over the three classes
    probs = [[0.5, 0.3, 0.2], [0.6, 0.1, 0.3], [0.4, 0.35, 0.25]]
    s = [[math.log(p) for p in row] for row in probs]
    w = [[20.0, 0.0, 0.0], [0.0, 20.0, 0.0], [0.0, 0.0, 20.0]]
    share = [sum(softmax(r)[c] for r in w) / 3 for c in range(3)]
    thresholds = [quantile([row[c] for row in probs], 1 - share[c]) for c in range(3)]
    hardened = [argmax([row[c] - thresholds[c] for c in range(3)]) for row in probs]
    assert hardened == [1, 0, 1] and [argmax(r) for r in probs] == [0, 0, 0]
    for progress in (0.05, 1.0):
        coef = 0.5 * (1.0 if progress > 0.1 else progress)
        expected = [(1 - coef) * -sum(p * math.log(q) for p, q in zip(softmax(wr), softmax(sr))) + coef * ce(sr, h)
                    for sr, wr, h in zip(s, w, hardened)]
        got = LOSSES["aux_conf_multiclass"](t(s), t(w), progress=progress).loss.tolist()
        assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (2.0, 0.5), (0.0, 1.0)])
def test_product_is_openai_product_loss(alpha, beta):
    expected = []
    for s, w in zip(S, W):
        ps, pw = softmax(s), softmax(w)
        raw = [a ** beta * b ** alpha for a, b in zip(ps, pw)]
        target = [r / sum(raw) for r in raw]
        expected.append(-sum(tg * math.log(p) for tg, p in zip(target, ps)))
    got = per_sample("product", product_alpha=alpha, product_beta=beta)
    assert got == pytest.approx(expected, rel=1e-5)


def test_product_target_carries_no_gradient():
    s = t(S).requires_grad_(True)
    LOSSES["product"](s, t(W)).loss.sum().backward()
    for row, w, grad in zip(S, W, s.grad.tolist()):
        ps, pw = softmax(row), softmax(w)
        raw = [a * b for a, b in zip(ps, pw)]
        target = [r / sum(raw) for r in raw]
        # d/ds of CE(s, fixed target) = softmax(s) - target
        assert grad == pytest.approx([p - tg for p, tg in zip(ps, target)], abs=1e-6)


@pytest.mark.parametrize("gt_weight,weak_weight", [(0.3, 1.0), (2.5, 0.5)])
def test_gt_loss_weight_scales_the_ground_truth_term(gt_weight, weak_weight):
    kd = sum(kl_kd(s, w, 1.0) for s, w in zip(S, W)) / 2
    gt = sum(ce(s, y) for s, y in zip(S, Y)) / 2
    loss, _ = compute_w2s_loss("kd", t(S), t(W), torch.tensor(Y), gt_loss_weight=gt_weight,
                               weak_loss_weight=weak_weight)
    assert loss.item() == pytest.approx(gt_weight * gt + weak_weight * kd, rel=1e-5)


def test_ground_truth_term_under_mixup_and_label_smoothing():
    lam, perm, eps = 0.7, torch.tensor([1, 0]), 0.1
    labels = torch.tensor(Y)

    def smoothed_ce(s, y):  # CE to (1 - eps) onehot(y) + eps / C
        logp = [math.log(p) for p in softmax(s)]
        return -sum(((1 - eps) * (k == y) + eps / len(s)) * lp for k, lp in enumerate(logp))

    mixed = [lam * smoothed_ce(s, Y[i]) + (1 - lam) * smoothed_ce(s, Y[int(perm[i])]) for i, s in enumerate(S)]
    kd = sum(kl_kd(s, w, 1.0) for s, w in zip(S, W)) / 2
    loss, comps = compute_w2s_loss("kd", t(S), t(W), labels, gt_loss_weight=0.5, label_mix=(lam, perm),
                                   label_smoothing=eps)
    assert comps["ce_gt"].item() == pytest.approx(sum(mixed) / 2, rel=1e-5)
    assert loss.item() == pytest.approx(kd + 0.5 * sum(mixed) / 2, rel=1e-5)
    # the ceiling's own loss takes the same target
    ceiling, _ = compute_w2s_loss("ground_truth", t(S), None, labels, label_mix=(lam, perm), label_smoothing=eps)
    assert ceiling.item() == pytest.approx(sum(mixed) / 2, rel=1e-5)


def test_gt_term_is_added():
    labels = torch.tensor(Y)
    loss, comps = compute_w2s_loss("kd", t(S), t(W), labels, gt_loss_weight=1.0, weak_loss_weight=2.0)
    kd = sum(kl_kd(s, w, 1.0) for s, w in zip(S, W)) / 2
    gt = sum(ce(s, y) for s, y in zip(S, Y)) / 2
    assert loss.item() == pytest.approx(2 * kd + gt, rel=1e-5)
    assert comps["ce_gt"].item() == pytest.approx(gt, rel=1e-5)
    assert comps["agreement"].item() == 0.5
    with pytest.raises(ValueError, match="needs true labels"):
        compute_w2s_loss("kd", t(S), t(W), None, gt_loss_weight=1.0)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_large_logits_and_small_temperature_stay_finite(name):
    columns = 2 if name == "aux_conf" else 3  # OpenAI's aux_conf is binary
    s = torch.tensor([[1e4, -1e4, 0.0], [-5e3, 5e3, 1e3]])[:, :columns].requires_grad_(True)
    w = torch.tensor([[-1e4, 1e4, 0.0], [3e3, -3e3, 0.0]])[:, :columns]
    loss, comps = compute_w2s_loss(name, s, w, torch.tensor([0, 1]), confidence_temperature=1e-3,
                                   kd_temperature=0.05)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
    assert all(torch.isfinite(v) for v in comps.values())


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="Unknown w2s loss 'nope'"):
        compute_w2s_loss("nope", t(S), t(W))
    with pytest.raises(ValueError, match="does not match the student's logits"):
        compute_w2s_loss("kd", t(S), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="needs weak supervision"):
        compute_w2s_loss("adapt_conf", t(S), None)


def test_a_binary_only_loss_is_refused_before_training_for_more_classes(tmp_path):
    from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer
    from hf_w2s.modeling import build_model

    args = WeakToStrongConfig(output_dir=str(tmp_path), w2s_loss="aux_conf", report_to="none", use_cpu=True)
    with pytest.raises(ValueError, match="defined for 2 classes only; this label set has 3.*aux_conf_multiclass"):
        WeakToStrongTrainer(model=build_model("linear", ["a", "b", "c"], width=4), args=args)
    two = build_model("linear", ["a", "b"], width=4)
    assert WeakToStrongTrainer(model=two, args=args, weak_model=two).args.w2s_loss == "aux_conf"
