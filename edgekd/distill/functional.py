"""Low-level tensor losses (torchdistill's "level 1"): pure functions of tensors."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kl_div_batchmean(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) from log-probabilities, summed over classes and averaged over the batch."""
    return (p_log.exp() * (p_log - q_log)).sum(dim=1).mean()


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Hinton's soft-target term τ²·KL(p_t^τ‖p_s^τ) with ``batchmean`` reduction."""
    log_ps = F.log_softmax(student_logits / tau, dim=1)
    log_pt = F.log_softmax(teacher_logits / tau, dim=1)
    return kl_div_batchmean(log_pt, log_ps) * (tau * tau)
