"""Distillation methods: identities from the notes, finite-difference gradients, golden
values, and agreement with independent reimplementations written here (to 1e-6).

The reference implementations below are deliberately written differently from
edgekd.distill.functional (explicit loops over samples and classes, plain-domain
Sinkhorn, no masking tricks) so that a shared mistake is unlikely.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd import gradcheck

from edgekd.config.load import parse_recipe
from edgekd.config.schema import NormalizeConfig, TrainConfig
from edgekd.data import PairedViews
from edgekd.data.dataset import ImageSet
from edgekd.data.views import iterate_batches
from edgekd.distill import (LOSSES, CompositeLoss, FeatureTaps, LossContext, MultiTeacherSignal, PrepareInfo,
                            TapSpec, TeacherSignal, build_teacher_cache, resolve, teacher_taps_for, train, unwrap)
from edgekd.distill import functional as KF
from edgekd.distill.trainer import seed_everything
from edgekd.errors import ConfigError
from edgekd.nets import create_net

D = torch.float64


def _rand(b=7, c=5, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    zs = torch.randn(b, c, generator=g, dtype=D) * scale
    zt = torch.randn(b, c, generator=g, dtype=D) * scale
    y = torch.randint(0, c, (b,), generator=g)
    return zs, zt, y


def _ctx(zs, y, zt=None, **kw):
    return LossContext(zs, y, zt, **kw)


# ---------------------------------------------------------------------------------------
# independent reference implementations
# ---------------------------------------------------------------------------------------


def _softmax_row(z):
    e = [math.exp(v - max(z)) for v in z]
    s = sum(e)
    return [v / s for v in e]


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def ref_kd_per_sample(zs, zt, tau):
    return [_kl(_softmax_row((zt[i] / tau).tolist()), _softmax_row((zs[i] / tau).tolist())) for i in range(len(zs))]


def ref_dkd(zs, zt, y, alpha, beta, tau):
    out = []
    for i in range(len(zs)):
        ps, pt = _softmax_row((zs[i] / tau).tolist()), _softmax_row((zt[i] / tau).tolist())
        k = int(y[i])
        tckd = _kl([pt[k], 1 - pt[k]], [ps[k], 1 - ps[k]])
        rest = [j for j in range(len(ps)) if j != k]
        ns = [ps[j] / (1 - ps[k]) for j in rest]
        nt = [pt[j] / (1 - pt[k]) for j in rest]
        out.append((alpha * tckd + beta * _kl(nt, ns)) * tau * tau)
    return sum(out) / len(out), out


def ref_nkd(zs, zt, y, gamma, lam):
    tot_t = tot_n = 0.0
    for i in range(len(zs)):
        k = int(y[i])
        ps, pt = _softmax_row(zs[i].tolist()), _softmax_row(zt[i].tolist())
        tot_t += -pt[k] * math.log(ps[k])
        rest = [j for j in range(zs.shape[1]) if j != k]
        ns = _softmax_row([float(zs[i, j]) / lam for j in rest])
        nt = _softmax_row([float(zt[i, j]) / lam for j in rest])
        tot_n += sum(a * math.log(b) for a, b in zip(nt, ns))
    n = len(zs)
    return tot_t / n - gamma * lam * lam * tot_n / n


def ref_pld(zs, zt, y, tau, weights=None):
    tot = 0.0
    for i in range(len(zs)):
        k = int(y[i])
        others = sorted([j for j in range(zs.shape[1]) if j != k], key=lambda j: -float(zt[i, j]))
        perm = [k] + others
        pt = _softmax_row((zt[i] / tau).tolist())
        for pos, c in enumerate(perm):
            a = pt[c] if weights is None else float(weights[i][pos])
            tail = [float(zs[i, perm[m]]) for m in range(pos, len(perm))]
            mx = max(tail)
            lse = mx + math.log(sum(math.exp(v - mx) for v in tail))
            tot += a * (lse - float(zs[i, c]))
    return tot / len(zs)


def ref_sinkd(zs, zt, tau, eps, iters):
    ps = np.array([_softmax_row((r / tau).tolist()) for r in zs])
    pt = np.array([_softmax_row((r / tau).tolist()) for r in zt])
    w = np.abs(ps[:, None, :] - pt[None, :, :]).sum(2)
    k = np.exp(-w / eps)
    for _ in range(iters):
        k = k / k.sum(1, keepdims=True)
        k = k / k.sum(0, keepdims=True)
    return float((k * w).sum()) / len(zs)


def ref_taid(zs, zt, t):
    tot = 0.0
    for i in range(len(zs)):
        q = _softmax_row(((1 - t) * zs[i] + t * zt[i]).tolist())
        p = _softmax_row(zs[i].tolist())
        tot += -sum(a * math.log(b) for a, b in zip(q, p))
    return tot / len(zs)


def ref_bdkd(zs, zt, tau, fwd, rev, boost, balance):
    tot = 0.0
    for i in range(len(zs)):
        ps, pt = _softmax_row((zs[i] / tau).tolist()), _softmax_row((zt[i] / tau).tolist())
        hs = -sum(p * math.log(p) for p in ps)
        ht = -sum(p * math.log(p) for p in pt)
        wf, wr = fwd, rev
        if balance == "entropy":
            if hs > ht:
                wr *= boost
            else:
                wf *= boost
        tot += wf * _kl(pt, ps) + wr * _kl(ps, pt)
    return tot / len(zs) * tau * tau


def ref_nd(fs, ft, e, y):
    tot = 0.0
    for i in range(len(fs)):
        dot = float((fs[i] * e[int(y[i])]).sum())
        tot += 1 - dot / max(float(fs[i].norm()), float(ft[i].norm()))
    return tot / len(fs)


def ref_at(fs, ft, p=2.0):
    tot, n = 0.0, 0
    for i in range(len(fs)):
        a = (fs[i].abs() ** p).mean(0).flatten()
        b = (ft[i].abs() ** p).mean(0).flatten()
        a, b = a / a.norm(), b / b.norm()
        tot += float(((a - b) ** 2).sum())
        n += a.numel()
    return tot / n


# ---------------------------------------------------------------------------------------
# agreement with the references on random inputs (1e-6)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logit_methods_match_independent_references(seed):
    zs, zt, y = _rand(9, 6, seed)
    tol = 1e-6
    assert abs(float(LOSSES["dkd"](warmup=0)(_ctx(zs, y, zt))) - ref_dkd(zs, zt, y, 1.0, 8.0, 4.0)[0]) < tol
    assert abs(float(LOSSES["dkd"](alpha=0.5, beta=2, tau=2, warmup=0)(_ctx(zs, y, zt)))
               - ref_dkd(zs, zt, y, 0.5, 2.0, 2.0)[0]) < tol
    assert abs(float(LOSSES["nkd"]()(_ctx(zs, y, zt))) - ref_nkd(zs, zt, y, 1.5, 1.0)) < tol
    assert abs(float(LOSSES["nkd"](gamma=0.7, lam=2.0)(_ctx(zs, y, zt))) - ref_nkd(zs, zt, y, 0.7, 2.0)) < tol
    assert abs(float(LOSSES["pld"](tau=4.0)(_ctx(zs, y, zt))) - ref_pld(zs, zt, y, 4.0)) < tol
    assert abs(float(LOSSES["sinkd"]()(_ctx(zs, y, zt))) - ref_sinkd(zs, zt, 2.0, 0.1, 20)) < tol
    assert abs(float(LOSSES["sinkd"](tau=1, eps=0.5, iters=7)(_ctx(zs, y, zt))) - ref_sinkd(zs, zt, 1, 0.5, 7)) < tol
    taid = LOSSES["taid"]().eval()
    assert abs(float(taid(_ctx(zs, y, zt))) - ref_taid(zs, zt, 0.4)) < tol
    for bal in ("entropy", "fixed"):
        got = float(LOSSES["bdkd"](balance=bal, rev=0.5, boost=3.0)(_ctx(zs, y, zt)))
        assert abs(got - ref_bdkd(zs, zt, 4.0, 1.0, 0.5, 3.0, bal)) < tol


def test_feature_losses_match_references():
    g = torch.Generator().manual_seed(3)
    fs, ft = torch.randn(6, 10, generator=g, dtype=D), torch.randn(6, 10, generator=g, dtype=D)
    e = F.normalize(torch.randn(3, 10, generator=g, dtype=D), dim=1)
    y = torch.randint(0, 3, (6,), generator=g)
    assert abs(float(KF.nd_loss(fs, ft, e, y)) - ref_nd(fs, ft, e, y)) < 1e-6
    ms, mt = torch.randn(4, 3, 5, 5, generator=g, dtype=D), torch.randn(4, 7, 5, 5, generator=g, dtype=D)
    assert abs(float(KF.at_loss(KF.attention_map(ms), KF.attention_map(mt))) - ref_at(ms, mt)) < 1e-6
    assert abs(float(KF.hint_loss(fs, ft)) - 0.5 * float(((fs - ft) ** 2).mean())) < 1e-12


# ---------------------------------------------------------------------------------------
# KD / DKD
# ---------------------------------------------------------------------------------------


def test_dkd_decomposition_identity_per_sample():
    zs, zt, y = _rand(11, 7, 4)
    for tau in (1.0, 4.0):
        tckd, nckd = KF.dkd_parts_per_sample(zs, zt, y, tau)
        pty = torch.softmax(zt / tau, 1).gather(1, y[:, None])[:, 0]
        kd = torch.tensor(ref_kd_per_sample(zs, zt, tau), dtype=D)
        assert torch.allclose(tckd + (1 - pty) * nckd, kd, atol=1e-12)


def test_dkd_exact_mask_equals_minus_1000_mask_and_zero_at_equality():
    zs, zt, y = _rand(8, 5, 5)
    tau = 4.0
    mask = F.one_hot(y, 5).bool()
    # mdistiller's trick: subtract 1000 from the target logit before the softmax
    ls = F.log_softmax(zs / tau - 1000.0 * mask, 1)
    pt = F.softmax(zt / tau - 1000.0 * mask, 1)
    nckd_1000 = (pt * (torch.log(pt.clamp_min(1e-300)) - ls)).masked_fill(mask, 0).sum(1)
    _, nckd = KF.dkd_parts_per_sample(zs, zt, y, tau)
    assert torch.allclose(nckd, nckd_1000, atol=1e-10)
    t0, n0 = KF.dkd_parts_per_sample(zs, zs.clone(), y, tau)
    assert t0.abs().max() < 1e-12 and n0.abs().max() < 1e-12


def test_dkd_warmup_ramp():
    zs, zt, y = _rand(5, 4, 6)
    dkd = LOSSES["dkd"](warmup=4)
    full = float(LOSSES["dkd"](warmup=0)(_ctx(zs, y, zt)))
    vals = [float(dkd(_ctx(zs, y, zt, epoch=e))) for e in range(6)]
    assert np.allclose(vals, [full * min((e + 1) / 4, 1) for e in range(6)], atol=1e-12)


def test_two_class_degeneracies():
    """With 2 classes NCKD and NKD's non-target term vanish, PLD = p_t,y·CE (documented)."""
    zs, zt, y = _rand(6, 2, 7)
    _, nckd = KF.dkd_parts_per_sample(zs, zt, y, 4.0)
    assert nckd.abs().max() < 1e-12
    assert abs(float(KF.nkd_loss(zs, zt, y, 1.5, 1.0)) - float(KF.nkd_loss(zs, zt, y, 0.0, 1.0))) < 1e-12
    pty = torch.softmax(zt, 1).gather(1, y[:, None])[:, 0]
    ce = F.cross_entropy(zs, y, reduction="none")
    assert abs(float(KF.pld_loss(zs, zt, y, 1.0)) - float((pty * ce).mean())) < 1e-12


# ---------------------------------------------------------------------------------------
# NKD
# ---------------------------------------------------------------------------------------


def test_nkd_value_at_equality():
    zs, _, y = _rand(6, 5, 8)
    gamma, lam = 1.5, 2.0
    got = float(KF.nkd_loss(zs, zs.clone(), y, gamma, lam))
    p = torch.softmax(zs, 1)
    target = -(p.gather(1, y[:, None]) * p.gather(1, y[:, None]).log()).mean()
    mask = F.one_hot(y, 5).bool()
    nt = torch.softmax((zs / lam).masked_fill(mask, -float("inf")), 1)
    h = -(nt * nt.clamp_min(1e-300).log()).sum(1).mean()
    assert abs(got - float(target + gamma * lam * lam * h)) < 1e-12
    assert got > 0.1  # NKD is not 0 at equality


def test_nkd_non_target_gradient_zero_when_renormalized_match_and_mask_removes_target():
    zs, zt, y = _rand(5, 6, 9)
    # non-target student logits = teacher's + a constant; target logits differ
    mask = F.one_hot(y, 6).bool()
    zs = torch.where(mask, zs, zt + 0.7).requires_grad_(True)

    def non_target(z):
        return KF.nkd_loss(z, zt, y, 1.5, 1.0) - KF.nkd_loss(z, zt, y, 0.0, 1.0)

    (g,) = torch.autograd.grad(non_target(zs), zs)
    assert g.abs().max() < 1e-12
    # the known bug: a mask that leaves the target in changes the value when the target moves
    z2 = zs.detach().clone()
    z2[mask] += 3.0
    assert abs(float(non_target(z2)) - float(non_target(zs.detach()))) < 1e-12
    buggy = -(torch.softmax(zt, 1) * torch.log_softmax(z2, 1)).sum(1).mean() * 1.5
    buggy0 = -(torch.softmax(zt, 1) * torch.log_softmax(zs.detach(), 1)).sum(1).mean() * 1.5
    assert abs(float(buggy - buggy0)) > 1e-3  # the test above would catch it


# ---------------------------------------------------------------------------------------
# PLD
# ---------------------------------------------------------------------------------------


def test_pld_one_hot_weights_is_ce_and_shift_invariance():
    zs, zt, y = _rand(8, 6, 10)
    onehot = torch.zeros(8, 6, dtype=D)
    onehot[:, 0] = 1.0
    assert abs(float(KF.pld_loss(zs, zt, y, 1.0, weights=onehot)) - float(F.cross_entropy(zs, y))) < 1e-12
    assert abs(float(KF.pld_loss(zs, zt, y, 4.0)) - float(KF.pld_loss(zs + 3.7, zt, y, 4.0))) < 1e-10
    perm = KF.pld_permutation(zt, y)
    assert torch.equal(perm[:, 0], y)
    rest = zt.gather(1, perm[:, 1:])
    assert (rest[:, :-1] >= rest[:, 1:]).all()
    assert abs(float(KF.pld_loss(zs, zt, y, 1.0, weights=onehot)) - ref_pld(zs, zt, y, 1.0, onehot)) < 1e-10


# ---------------------------------------------------------------------------------------
# SinKD
# ---------------------------------------------------------------------------------------


def test_sinkd_permutation_invariance_and_eps_limit():
    zs, zt, y = _rand(10, 4, 11)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    a = float(KF.sinkhorn_kd(zs, zt, 2.0, 0.1, 20))
    b = float(KF.sinkhorn_kd(zs[perm], zt, 2.0, 0.1, 20))
    assert abs(a - b) < 1e-10
    same = [float(KF.sinkhorn_kd(zt, zt, 2.0, eps, 50)) for eps in (0.1, 0.01, 0.001)]
    assert same[0] > 1e-4  # small but not zero at s = t
    assert same[0] > same[1] > same[2] and same[2] < 1e-6  # → 0 as ε → 0
    assert a > same[0]


# ---------------------------------------------------------------------------------------
# TAID
# ---------------------------------------------------------------------------------------


def test_taid_zero_gradient_at_t0_and_kd_at_t1():
    zs, zt, y = _rand(6, 5, 12)
    z = zs.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(KF.taid_loss(z, zt, 0.0), z)
    assert g.abs().max() < 1e-15  # p_s − q with q = p_s: zero up to float64 rounding
    (g4,) = torch.autograd.grad(KF.taid_loss(z, zt, 0.4), z)
    assert g4.abs().max() > 1e-3
    pt = torch.softmax(zt, 1)
    h = -(pt * pt.log()).sum(1).mean()
    assert abs(float(KF.taid_loss(zs, zt, 1.0)) - float(KF.kd_kl(zs, zt, 1.0) + h)) < 1e-12


def test_taid_t_monotone_within_schedule_and_state_roundtrip():
    taid = LOSSES["taid"](alpha=0.05)
    rng = np.random.default_rng(0)
    ts, total = [], 200
    loss = 2.0
    for step in range(1, total + 1):
        loss *= float(rng.uniform(0.9, 1.08))
        ts.append(taid.update(loss, step, total))
        assert taid.linear_t(step, total) - 1e-12 <= ts[-1] <= 1.0
    assert all(b >= a for a, b in zip(ts, ts[1:]))
    assert ts[-1] == pytest.approx(1.0)
    other = LOSSES["taid"](alpha=0.05)
    st = taid.extra_state()
    other.load_extra_state(st)
    assert other.extra_state() == st


def test_taid_updates_only_in_training():
    zs, zt, y = _rand(6, 5, 13)
    taid = LOSSES["taid"](alpha=0.5)
    for s in range(3):
        taid(_ctx(zs * (1 - 0.1 * s), y, zt, step=s, total_steps=10))
    t_train = taid.t
    assert t_train > 0.4
    taid.eval()
    taid(_ctx(zs, y, zt, step=5, total_steps=10))
    assert taid.t == t_train


# ---------------------------------------------------------------------------------------
# BD-KD
# ---------------------------------------------------------------------------------------


def test_bdkd_identities():
    zs, zt, y = _rand(7, 5, 14)
    tau = 3.0
    kd = float(KF.kd_kl(zs, zt, tau))
    assert abs(float(LOSSES["bdkd"](tau=tau, balance="fixed", fwd=1, rev=0)(_ctx(zs, y, zt))) - kd) < 1e-12
    z = zt.clone().requires_grad_(True)
    loss = LOSSES["bdkd"](tau=tau)(_ctx(z, y, zt))
    (g,) = torch.autograd.grad(loss, z)
    assert abs(float(loss.detach())) < 1e-12 and g.abs().max() < 1e-12
    # ∂KL(p_s‖p_t)/∂z_s = p_s⊙(log p_s − log p_t − KL) per sample (τ = 1)
    z = zs.clone().requires_grad_(True)
    rev = KF.kl_per_sample(F.log_softmax(z, 1), F.log_softmax(zt, 1))
    (g,) = torch.autograd.grad(rev.sum(), z)
    ps, lps, lpt = torch.softmax(zs, 1), F.log_softmax(zs, 1), F.log_softmax(zt, 1)
    assert torch.allclose(g, ps * (lps - lpt - rev.detach()[:, None]), atol=1e-12)


def test_bdkd_entropy_weights_follow_confidence():
    zt = torch.tensor([[4.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=D)
    zs = torch.tensor([[1.0, 0.0, 0.0], [6.0, 0.0, 0.0]], dtype=D)  # row 0 unsure, row 1 over-confident
    m = LOSSES["bdkd"](tau=1.0, boost=2.0)
    wf, wr = m.weights(zs, zt)
    assert wf.tolist() == [1.0, 2.0] and wr.tolist() == [2.0, 1.0]
    wf, wr = LOSSES["bdkd"](tau=1.0, boost=2.0, unsure="forward").weights(zs, zt)
    assert wf.tolist() == [2.0, 1.0] and wr.tolist() == [1.0, 2.0]


def test_bdkd_rejects_unknown_direction():
    with pytest.raises(ConfigError, match="unsure"):
        LOSSES["bdkd"](unsure="sideways")


# ---------------------------------------------------------------------------------------
# PS-KD
# ---------------------------------------------------------------------------------------


def test_pskd_first_epoch_is_ce_then_uses_previous_predictions():
    zs, _, y = _rand(6, 4, 15)
    m = LOSSES["pskd"](alpha_T=0.8)
    m.prepare(PrepareInfo(num_classes=4, n_train=10, train_labels=torch.zeros(10, dtype=torch.long)))
    idx = torch.tensor([9, 0, 3, 4, 7, 2])
    assert abs(float(m(_ctx(zs, y, index=idx, epoch=0, num_epochs=4))) - float(F.cross_entropy(zs, y))) < 1e-12
    m.on_epoch_end(0)
    z2 = zs.flip(0)
    y2, idx2 = y.flip(0), idx.flip(0)
    got = float(m(_ctx(z2, y2, index=idx2, epoch=1, num_epochs=4)))
    a = 0.8 * 1 / 4
    prev = torch.softmax(zs, 1).flip(0)
    target = (1 - a) * F.one_hot(y2, 4) + a * prev
    assert abs(got - float(-(target * F.log_softmax(z2, 1)).sum(1).mean())) < 1e-7
    st = m.extra_state()
    other = LOSSES["pskd"]()
    other.load_extra_state(st)
    assert torch.equal(other.prev, m.prev) and int(other.has_prev.sum()) == 6


# ---------------------------------------------------------------------------------------
# feature methods
# ---------------------------------------------------------------------------------------


def test_nd_values_zero_one_two():
    e = F.normalize(torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, 1.0]], dtype=D), dim=1)
    y = torch.tensor([0, 0, 0])
    ft = torch.tensor([[3.0, 0, 0]] * 3, dtype=D)  # ‖f_t‖ = 3
    orth = torch.tensor([2.0, -1.0, 0.0], dtype=D)
    fs = torch.stack([5.0 * e[0], orth, -4.0 * e[0]])
    per = [float(KF.nd_loss(fs[i:i + 1], ft[i:i + 1], e, y[i:i + 1])) for i in range(3)]
    assert per == pytest.approx([0.0, 1.0, 2.0], abs=1e-12)
    # λ < ‖f_t‖ gives 1 − λ/‖f_t‖ > 0
    assert float(KF.nd_loss(2.0 * e[:1], ft[:1], e, y[:1])) == pytest.approx(1 - 2 / 3)


def test_at_scale_invariance_and_zero():
    g = torch.Generator().manual_seed(16)
    fs, ft = torch.randn(3, 4, 6, 6, generator=g, dtype=D), torch.randn(3, 8, 6, 6, generator=g, dtype=D)
    a = KF.at_loss(KF.attention_map(fs), KF.attention_map(ft))
    b = KF.at_loss(KF.attention_map(7.5 * fs), KF.attention_map(0.2 * ft))
    assert abs(float(a - b)) < 1e-12 and float(a) > 0
    assert float(KF.at_loss(KF.attention_map(fs), KF.attention_map(fs.clone()))) == 0.0


def test_fitnet_zero_when_regressed_equals_teacher_and_mismatch_error():
    m = LOSSES["fitnet"](student="a", teacher="b", regressor="none")
    v = torch.randn(4, 3, 5, 5, dtype=D)
    with pytest.raises(ConfigError, match="differ"):
        m.build((3, 5, 5), (6, 5, 5))
    m.build((3, 5, 5), (3, 5, 5))
    assert float(m(_ctx(torch.zeros(4, 2, dtype=D), torch.zeros(4, dtype=torch.long),
                        student_features={"a": v}, teacher_features={"b": v.clone()}))) == 0.0
    auto = LOSSES["fitnet"](student="a", teacher="b")
    auto.build((3, 5, 5), (6, 4, 4))
    auto.double()
    u = auto.regressor(v).detach()
    assert u.shape == (4, 6, 4, 4)
    assert float(auto(_ctx(torch.zeros(4, 2, dtype=D), torch.zeros(4, dtype=torch.long),
                           student_features={"a": v}, teacher_features={"b": u})).detach()) == 0.0


# ---------------------------------------------------------------------------------------
# multi-teacher
# ---------------------------------------------------------------------------------------


def test_multi_teacher_identical_teachers_equal_kd_and_subsets_isolate_gradients():
    zs, zt, y = _rand(8, 5, 17)
    kd = float(KF.kd_kl(zs, zt, 4.0))
    for params in ({"weights": [0.25, 0.75]}, {"adaptive": True}, {}):
        m = LOSSES["mtkd"](**params)
        assert abs(float(m(_ctx(zs, y, zt, teachers_logits=[zt, zt.clone()]))) - kd) < 1e-10
    # specialist on classes [1, 3] (2 outputs): no gradient on the other classes
    m = LOSSES["mtkd"](classes=[[1, 3], None], weights=[1.0, 0.0])
    z = zs.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m(_ctx(z, y, None, teachers_logits=[zt[:, [1, 3]], zt])), z)
    assert g[:, [0, 2, 4]].abs().max() == 0.0 and g[:, [1, 3]].abs().max() > 0
    # adaptive: a teacher that does not know the label gets weight 0 for that sample
    m = LOSSES["mtkd"](classes=[[1, 3], None], adaptive=True)
    _, ces = m.per_teacher(zs, [zt[:, [1, 3]], zt], y)
    w = m.weights_for(ces)
    knows = (y == 1) | (y == 3)
    assert torch.all(w[0][~knows] == 0) and torch.allclose(w.sum(0), torch.ones(8, dtype=D))


# ---------------------------------------------------------------------------------------
# gradients against finite differences (float64)
# ---------------------------------------------------------------------------------------


def test_gradcheck_all_functional_losses():
    zs, zt, y = _rand(4, 4, 18, scale=1.0)
    z = zs.clone().requires_grad_(True)
    checks = {
        "kd": lambda a: KF.kd_kl(a, zt, 3.0),
        "dkd": lambda a: KF.dkd_loss(a, zt, y, 1.0, 8.0, 4.0),
        "nkd": lambda a: KF.nkd_loss(a, zt, y, 1.5, 2.0),
        "pld": lambda a: KF.pld_loss(a, zt, y, 2.0),
        "sinkd": lambda a: KF.sinkhorn_kd(a, zt, 2.0, 0.5, 10),
        "bdkd": lambda a: KF.bdkd_loss(a, zt, torch.tensor([1.0, 2, 1, 2], dtype=D),
                                       torch.tensor([2.0, 1, 2, 1], dtype=D), 2.0),
        "mtkd": lambda a: LOSSES["mtkd"](classes=[[0, 2], None], adaptive=True)(
            _ctx(a, y, None, teachers_logits=[zt[:, [0, 2]], zt])),
    }
    for name, fn in checks.items():
        assert gradcheck(fn, (z,), eps=1e-6, atol=1e-5), name
    # TAID's target uses z_s.detach() by design, so finite differences (which move the
    # target too) do not apply to it as a whole: check the CE part with the target held
    # fixed, and that autograd gives exactly (p_s − q)/B
    q = torch.softmax(0.4 * zs + 0.6 * zt, 1)
    assert gradcheck(lambda a: KF.soft_cross_entropy(a, q), (z,), eps=1e-6, atol=1e-5)
    (g,) = torch.autograd.grad(KF.taid_loss(z, zt, 0.6), z)
    assert torch.allclose(g, (torch.softmax(zs, 1) - q) / 4, atol=1e-14)
    g = torch.Generator().manual_seed(19)
    fs = torch.randn(3, 6, dtype=D, generator=g, requires_grad=True)
    ft = torch.randn(3, 6, dtype=D, generator=g) * 0.1  # student norm dominates: smooth
    e = F.normalize(torch.randn(2, 6, dtype=D, generator=g), dim=1)
    assert gradcheck(lambda a: KF.nd_loss(a, ft, e, torch.tensor([0, 1, 1])), (fs,), eps=1e-6, atol=1e-5)
    ms = torch.randn(2, 3, 4, 4, dtype=D, generator=g, requires_grad=True)
    at_t = KF.attention_map(torch.randn(2, 5, 4, 4, dtype=D, generator=g))
    assert gradcheck(lambda a: KF.at_loss(KF.attention_map(a), at_t), (ms,), eps=1e-6, atol=1e-5)
    hint_t = torch.randn(2, 3, 4, 4, dtype=D, generator=g)
    assert gradcheck(lambda a: KF.hint_loss(a, hint_t), (ms,), eps=1e-6, atol=1e-5)


# ---------------------------------------------------------------------------------------
# golden values (fixed seeded inputs; regressions show up here first)
# ---------------------------------------------------------------------------------------

GOLDEN = {
    "dkd": 21.484063802104,
    "nkd": 4.675256373506,
    "pld": 2.123435853034,
    "sinkd": 0.701464158811,
    "taid": 1.276602938138,
    "bdkd": 7.174366192706,
    "mtkd": 2.609053651349,
}


def _golden_values():
    zs, zt, y = _rand(6, 5, 2024)
    half = [zt[:, [0, 1, 2]], zt]
    return {
        "dkd": float(LOSSES["dkd"](warmup=0)(_ctx(zs, y, zt))),
        "nkd": float(LOSSES["nkd"]()(_ctx(zs, y, zt))),
        "pld": float(LOSSES["pld"]()(_ctx(zs, y, zt))),
        "sinkd": float(LOSSES["sinkd"]()(_ctx(zs, y, zt))),
        "taid": float(LOSSES["taid"]().eval()(_ctx(zs, y, zt))),
        "bdkd": float(LOSSES["bdkd"]()(_ctx(zs, y, zt))),
        "mtkd": float(LOSSES["mtkd"](classes=[[0, 1, 2], None], adaptive=True)(
            _ctx(zs, y, None, teachers_logits=half))),
    }


def test_golden_values():
    got = _golden_values()
    for k, v in GOLDEN.items():
        assert got[k] == pytest.approx(v, abs=1e-9), k


# ---------------------------------------------------------------------------------------
# registry and recipe validation
# ---------------------------------------------------------------------------------------


def test_unknown_params_list_valid_ones_and_recipe_accepts_new_methods():
    with pytest.raises(ConfigError) as e:
        CompositeLoss([("dkd", 1.0, {"temperature": 4})])
    assert "alpha" in e.value.message and "warmup" in e.value.message
    recipe = {"students": [{"name": "s", "loss": [{"ce": 1.0}, {"kd": {"weight": 3.5, "tau": 4}},
                                                  {"nd": {"weight": 2, "student": "6"}},
                                                  {"taid": {"weight": 1, "t_start": 0.2}}]}]}
    r = parse_recipe(recipe)
    assert [t.method for t in r.students[0].loss] == ["ce", "kd", "nd", "taid"] and r.needs_teacher
    bad = {"students": [{"name": "s", "loss": [{"sinkd": {"epsilon": 0.1}}]}]}
    with pytest.raises(ConfigError, match="valid: \\['eps', 'iters', 'tau'\\]"):
        parse_recipe(bad)
    specs = teacher_taps_for(r.students[0].loss)
    assert specs == [TapSpec("features")]


# ---------------------------------------------------------------------------------------
# hooks, caches and the trainer
# ---------------------------------------------------------------------------------------


class DistributedDataParallel(nn.Module):
    """Stand-in with DDP's name and ``.module`` layout (real DDP is exercised below)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)


def test_hook_paths_resolve_on_unwrapped_model():
    net = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    wrapped = DistributedDataParallel(net)
    assert unwrap(wrapped) is net and resolve(wrapped, "module.5") is net[5] and resolve(wrapped, "5") is net[5]
    with FeatureTaps(wrapped, ["module.4", "6"]) as taps:
        wrapped(torch.randn(2, 1, 48, 48))
        out = taps.pop()
    assert out["module.4"].shape == (2, 16, 21, 21) and out["6"].shape == (2, 1600)
    with pytest.raises(ConfigError, match="valid paths"):
        resolve(wrapped, "stages.9")


def test_real_ddp_wrapped_student_features(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        net = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
        ddp = nn.parallel.DistributedDataParallel(net)
        with FeatureTaps(ddp, ["module.1", "5"]) as taps:
            ddp(torch.randn(2, 1, 48, 48)).sum().backward()
            out = taps.pop()
        assert out["module.1"].shape == (2, 16, 46, 46) and out["5"].abs().sum() > 0
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def tiny(small_cells):
    x, y = small_cells
    norm = NormalizeConfig()
    tr = PairedViews.from_images(ImageSet(x[:96], y[:96]), 32, 24, norm)
    va = PairedViews.from_images(ImageSet(x[96:144], y[96:144]), 32, 24, norm)
    seed_everything(3)
    teacher = create_net("resnet-mini", num_classes=2, in_channels=1, input_size=32,
                         params={"widths": [8, 8, 16]}).eval()
    return tr, va, teacher


def _student(seed=0):
    seed_everything(seed)
    return create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=24, params={"channels": 4})


FEATURE_LOSS = [("ce", 1.0, {}), ("kd", 1.0, {"tau": 4.0}), ("fitnet", 10.0, {"student": "4", "teacher": "stages.1"}),
                ("at", 100.0, {"student": "1", "teacher": "stages.0"}), ("nd", 1.0, {"student": "6"})]


def test_teacher_cache_features_match_live_and_key_includes_taps(tiny, tmp_path):
    tr, _, teacher = tiny
    specs = teacher_taps_for(FEATURE_LOSS)
    assert {s.key for s in specs} == {"stages.1", "stages.0@attention2", "features"}
    plain = build_teacher_cache(teacher, tr, "dihedral")
    cache = build_teacher_cache(teacher, tr, "dihedral", taps=specs, path=tmp_path / "c.pt")
    assert cache.key != plain.key and cache.features["stages.0@attention2"].shape == (96, 8, 16, 16)
    live = TeacherSignal(model=teacher)
    for b in iterate_batches(tr, 40, seed=1, epoch=0, shuffle=True, augment="dihedral"):
        zl, fl = live.outputs(b, specs)
        zc, fc = TeacherSignal(cache=cache).outputs(b, specs)
        assert torch.allclose(zl, zc, atol=1e-5)
        for k in fl:
            assert torch.allclose(fl[k], fc[k], atol=1e-5), k
    again = build_teacher_cache(teacher, tr, "dihedral", taps=specs, path=tmp_path / "c.pt")
    assert torch.equal(again.features["features"], cache.features["features"])
    half = build_teacher_cache(teacher, tr, "dihedral", taps=specs, feature_dtype=torch.float16)
    assert half.features["stages.1"].dtype == torch.float16
    with pytest.raises(ConfigError, match="GiB"):
        build_teacher_cache(teacher, tr, "dihedral", taps=specs, max_feature_bytes=1000)
    with pytest.raises(ConfigError, match="taps="):
        TeacherSignal(cache=plain).outputs(next(iterate_batches(tr, 4, seed=0, epoch=0, shuffle=False)), specs)


def test_feature_training_cache_equals_live_and_trains_regressors(tiny, tmp_path):
    tr, va, teacher = tiny
    cfg = TrainConfig(epochs=2, batch_size=32)
    cache = build_teacher_cache(teacher, tr, cfg.augment, taps=teacher_taps_for(FEATURE_LOSS))
    a, b = _student(), _student()
    la, lb = CompositeLoss(FEATURE_LOSS), CompositeLoss(FEATURE_LOSS)
    train(a, tr, va, cfg, la, seed=0, teacher=TeacherSignal(model=teacher), progress=False)
    ck = tmp_path / "s.pt"
    train(b, tr, va, cfg, lb, seed=0, teacher=TeacherSignal(cache=cache), progress=False, checkpoint=ck)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-4)
    fit = lb.methods[2]
    # the regressor and projector were optimized: they differ from their seeded initialisation
    fresh = CompositeLoss(FEATURE_LOSS)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fresh.methods[2].build((4, 9, 9), (8, 8, 8))
    assert not torch.allclose(fresh.methods[2].regressor.conv.weight, fit.regressor.conv.weight)
    nd = lb.methods[4]
    assert nd.class_dirs.shape == (2, 16) and torch.allclose(nd.class_dirs.norm(dim=1), torch.ones(2))
    blob = torch.load(ck, weights_only=True)
    assert any(k.startswith("methods.2.regressor") for k in blob["loss_module"])


def test_taid_and_pskd_state_survive_resume(tiny, tmp_path):
    tr, va, teacher = tiny
    cache = build_teacher_cache(teacher, tr, "dihedral")
    loss = [("taid", 1.0, {"alpha": 0.01}), ("pskd", 1.0, {})]
    cfg = TrainConfig(epochs=3, batch_size=32)
    ref_loss = CompositeLoss(loss)
    ref = _student()
    train(ref, tr, va, cfg, ref_loss, seed=0, teacher=TeacherSignal(cache=cache), progress=False)

    def stop(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    ck = tmp_path / "r.pt"
    with pytest.raises(KeyboardInterrupt):
        train(_student(), tr, va, cfg, CompositeLoss(loss), seed=0, teacher=TeacherSignal(cache=cache),
              checkpoint=ck, progress=False, on_epoch=stop)
    resumed_loss = CompositeLoss(loss)
    resumed = _student(seed=5)
    res = train(resumed, tr, va, cfg, resumed_loss, seed=0, teacher=TeacherSignal(cache=cache), checkpoint=ck,
                progress=False)
    assert res.resumed_from_epoch == 2
    assert resumed_loss.methods[0].t == ref_loss.methods[0].t > 0.4
    assert torch.equal(resumed_loss.methods[1].prev, ref_loss.methods[1].prev)
    for pa, pb in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(pa, pb)


def test_multi_teacher_signal_cached_like_one_teacher(tiny):
    from edgekd.distill import build_multi_teacher_signal

    tr, va, teacher = tiny
    seed_everything(4)
    small_t = create_net("resnet-mini", num_classes=2, in_channels=1, input_size=24,
                         params={"widths": [8, 8, 8]}).eval()
    sig = build_multi_teacher_signal([teacher, small_t], tr, "dihedral", inputs=[None, tr.student])
    live = MultiTeacherSignal([TeacherSignal(model=teacher), TeacherSignal(model=small_t, view="student")])
    for b in iterate_batches(tr, 48, seed=0, epoch=1, shuffle=True, augment="dihedral"):
        for zc, zl in zip(sig.all_logits(b), live.all_logits(b)):
            assert torch.allclose(zc, zl, atol=1e-4)
    res = train(_student(), tr, va, TrainConfig(epochs=1, batch_size=48),
                CompositeLoss([("ce", 0.1, {}), ("mtkd", 0.9, {"adaptive": True})]), seed=0, teacher=sig,
                progress=False)
    assert math.isfinite(res.history[-1]["loss"])
