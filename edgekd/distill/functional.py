"""Low-level tensor losses (torchdistill's "level 1"): pure functions of tensors.

Every function here takes plain tensors and returns a scalar (batch-averaged) unless
its name ends in ``_per_sample``. Formulas and defaults follow
``shared/notes/kd-methods.md``; KL terms always use the ``batchmean`` reduction
(sum over classes, mean over the batch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------
# KL divergences
# ---------------------------------------------------------------------------------------


def kl_div_batchmean(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) from log-probabilities, summed over classes and averaged over the batch."""
    return (p_log.exp() * (p_log - q_log)).sum(dim=1).mean()


def kl_per_sample(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(p_i‖q_i) for each row, from log-probabilities (shape B)."""
    return (p_log.exp() * (p_log - q_log)).sum(dim=1)


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Hinton's soft-target term τ²·KL(p_t^τ‖p_s^τ) with ``batchmean`` reduction."""
    log_ps = F.log_softmax(student_logits / tau, dim=1)
    log_pt = F.log_softmax(teacher_logits / tau, dim=1)
    return kl_div_batchmean(log_pt, log_ps) * (tau * tau)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """−Σ q log softmax(z), averaged over the batch (targets are not differentiated)."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def entropy_per_sample(logits: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Shannon entropy of softmax(z/τ) per row (nats)."""
    logp = F.log_softmax(logits / tau, dim=1)
    return -(logp.exp() * logp).sum(dim=1)


# ---------------------------------------------------------------------------------------
# DKD (Zhao et al., CVPR 2022)
# ---------------------------------------------------------------------------------------


def _binary_log(logp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log [p_y, 1 − p_y] from log-probabilities, computed without cancellation."""
    lp_y = logp.gather(1, target[:, None])
    # log(1 − p_y) = logsumexp over the non-target classes: exact, no 1 − p rounding
    mask = F.one_hot(target, logp.shape[1]).bool()
    lp_rest = torch.logsumexp(logp.masked_fill(mask, float("-inf")), dim=1, keepdim=True)
    return torch.cat([lp_y, lp_rest], dim=1)


def _non_target_log_softmax(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log-softmax over the non-target classes only; the target column is −inf.

    Exact masking (−inf), not the usual −1000 trick, so it stays correct for any logit
    scale; the target column is replaced by 0 *after* the softmax so that p·log p
    products there are 0·0 instead of 0·(−inf) = NaN.
    """
    mask = F.one_hot(target, logits.shape[1]).bool()
    out = F.log_softmax(logits.masked_fill(mask, float("-inf")), dim=1)
    return out.masked_fill(mask, 0.0)


def dkd_parts_per_sample(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                         target: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (TCKD, NCKD), both without the τ² factor.

    TCKD = KL([p_t,y, 1−p_t,y] ‖ [p_s,y, 1−p_s,y]); NCKD = KL of the distributions
    renormalized over the non-target classes. Identity: KL(p_t‖p_s) = TCKD + (1−p_t,y)·NCKD.
    """
    log_ps = F.log_softmax(student_logits / tau, dim=1)
    log_pt = F.log_softmax(teacher_logits / tau, dim=1)
    tckd = kl_per_sample(_binary_log(log_pt, target), _binary_log(log_ps, target))
    nt_s = _non_target_log_softmax(student_logits / tau, target)
    nt_t = _non_target_log_softmax(teacher_logits / tau, target)
    mask = F.one_hot(target, student_logits.shape[1]).bool()
    nckd = (nt_t.exp().masked_fill(mask, 0.0) * (nt_t - nt_s)).sum(dim=1)
    return tckd, nckd


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
             alpha: float, beta: float, tau: float) -> torch.Tensor:
    """τ²·(α·TCKD + β·NCKD), batch-averaged (no warm-up factor, no CE)."""
    tckd, nckd = dkd_parts_per_sample(student_logits, teacher_logits, target, tau)
    return (alpha * tckd + beta * nckd).mean() * (tau * tau)


# ---------------------------------------------------------------------------------------
# NKD (Yang et al., ICCV 2023)
# ---------------------------------------------------------------------------------------


def nkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
             gamma: float, lam: float) -> torch.Tensor:
    """−mean(p_t,y·log p_s,y) − γλ²·mean Σ_{i≠y} N(p_t^λ)_i log N(p_s^λ)_i.

    N(·) is the softmax over the non-target logits. With two classes the non-target
    distribution has one entry, so its term is identically 0.
    """
    log_ps = F.log_softmax(student_logits, dim=1)
    pt = F.softmax(teacher_logits, dim=1)
    target_term = -(pt.gather(1, target[:, None]) * log_ps.gather(1, target[:, None])).mean()
    nt_s = _non_target_log_softmax(student_logits / lam, target)
    nt_t = _non_target_log_softmax(teacher_logits / lam, target)
    mask = F.one_hot(target, student_logits.shape[1]).bool()
    non_target = (nt_t.exp().masked_fill(mask, 0.0) * nt_s).sum(dim=1).mean()
    return target_term - gamma * lam * lam * non_target


# ---------------------------------------------------------------------------------------
# PLD (Bassam et al., 2025): Plackett-Luce distillation
# ---------------------------------------------------------------------------------------


def pld_permutation(teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """π*: the label first, then the other classes by descending teacher logit (B×C)."""
    z = teacher_logits.detach().clone()
    # the label goes first whatever the teacher thinks: +inf sorts it to the front
    z.scatter_(1, target[:, None], float("inf"))
    return torch.argsort(z, dim=1, descending=True, stable=True)


def pld_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
             tau: float, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_k α_k·[−z_s,π_k + log Σ_{l≥k} exp z_s,π_l], batch-averaged.

    α_k = softmax(z_t/τ)_{π_k} unless ``weights`` (B×C, in π order) is given — with a
    one-hot on the first position the loss is exactly cross-entropy.
    """
    perm = pld_permutation(teacher_logits, target)
    zs = student_logits.gather(1, perm)
    if weights is None:
        weights = F.softmax(teacher_logits.detach() / tau, dim=1).gather(1, perm)
    # log Σ_{l≥k} exp z_l: a reverse cumulative logsumexp
    tail_lse = torch.logcumsumexp(zs.flip(1), dim=1).flip(1)
    return (weights * (tail_lse - zs)).sum(dim=1).mean()


# ---------------------------------------------------------------------------------------
# SinKD (Cui et al., 2024): batch-wise Sinkhorn distance
# ---------------------------------------------------------------------------------------


def sinkhorn_plan(cost: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """Transport plan from alternating row/column normalisation of exp(−W/ε).

    Done in the log domain (identical maths, no underflow for small ε). The last step
    normalises columns, so each column of the plan sums to 1.
    """
    log_k = -cost / eps
    for _ in range(iters):
        log_k = log_k - torch.logsumexp(log_k, dim=1, keepdim=True)
        log_k = log_k - torch.logsumexp(log_k, dim=0, keepdim=True)
    return log_k.exp()


def sinkhorn_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float, eps: float,
                iters: int) -> torch.Tensor:
    """Σ Π⊙W / B with W_ij = ‖P_s,i − P_t,j‖₁ on softmax(z/τ) rows.

    Divided by the batch size so the value does not grow with the batch (the plan has
    total mass B); invariant to permuting the student's rows.
    """
    ps = F.softmax(student_logits / tau, dim=1)
    pt = F.softmax(teacher_logits / tau, dim=1)
    cost = (ps[:, None, :] - pt[None, :, :]).abs().sum(dim=2)
    plan = sinkhorn_plan(cost, eps, iters)
    return (plan * cost).sum() / student_logits.shape[0]


# ---------------------------------------------------------------------------------------
# TAID (Shing et al., ICLR 2025)
# ---------------------------------------------------------------------------------------


def taid_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """−Σ q log p_s with q = softmax((1−t)·z_s.detach() + t·z_t), batch-averaged."""
    q = F.softmax((1.0 - t) * student_logits.detach() + t * teacher_logits, dim=1)
    return soft_cross_entropy(student_logits, q.detach())


# ---------------------------------------------------------------------------------------
# BD-KD (Amara et al., 2022)
# ---------------------------------------------------------------------------------------


def bdkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, w_forward: torch.Tensor,
              w_reverse: torch.Tensor, tau: float) -> torch.Tensor:
    """τ²·mean_i[w_f,i·KL(p_t‖p_s) + w_r,i·KL(p_s‖p_t)] at temperature τ.

    Weights are per-sample tensors (or scalars); (1, 0) is Hinton's KD term.
    """
    log_ps = F.log_softmax(student_logits / tau, dim=1)
    log_pt = F.log_softmax(teacher_logits / tau, dim=1)
    fwd = kl_per_sample(log_pt, log_ps)
    rev = kl_per_sample(log_ps, log_pt)
    return (w_forward * fwd + w_reverse * rev).mean() * (tau * tau)


# ---------------------------------------------------------------------------------------
# Feature losses
# ---------------------------------------------------------------------------------------


def nd_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor, class_dirs: torch.Tensor,
            target: torch.Tensor) -> torch.Tensor:
    """ND: mean_i [1 − ⟨f_s,i, e_{y_i}⟩ / max(‖f_s,i‖, ‖f_t,i‖)]; ``class_dirs`` rows are unit."""
    e = class_dirs[target]
    proj = (student_feat * e).sum(dim=1)
    norm = torch.maximum(student_feat.norm(dim=1), teacher_feat.norm(dim=1)).clamp_min(1e-12)
    return (1.0 - proj / norm).mean()


def attention_map(feat: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Un-normalised spatial attention mean_c |A_c|^p of a B×C×H×W map (B×H×W)."""
    return feat.abs().pow(p).mean(dim=1)


def at_loss(student_att: torch.Tensor, teacher_att: torch.Tensor) -> torch.Tensor:
    """Attention transfer: mean‖Q_s − Q_t‖² with Q = vec(map)/‖vec(map)‖ (B×H×W inputs).

    The maps must have the same spatial size; because of the normalisation the loss is
    invariant to scaling either feature map by k > 0.
    """
    qs = F.normalize(student_att.flatten(1), dim=1)
    qt = F.normalize(teacher_att.flatten(1), dim=1)
    return (qs - qt).pow(2).mean()


def hint_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """FitNet hint: ½·mean over elements of (u_teacher − r(v_student))²."""
    return 0.5 * (student_feat - teacher_feat).pow(2).mean()


def resize_map(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bring a B×C×H×W (or B×H×W) map to ``size``: average-pool down, bilinear up."""
    squeeze = x.ndim == 3
    if squeeze:
        x = x[:, None]
    if tuple(x.shape[-2:]) != tuple(size):
        if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
            x = F.adaptive_avg_pool2d(x, size)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x[:, 0] if squeeze else x
