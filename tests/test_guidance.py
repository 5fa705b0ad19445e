"""Cumulative classifier-free guidance: the branch plans and their combination (paper Eq. 7)."""

import pytest
import torch

from cfld.guidance import FULL, POSE_ONLY, UNCOND, combine, plan


def eq7(e_uc, e_pose, e_full, w_pose, w_app):
    return e_uc + w_pose * (e_pose - e_uc) + w_app * (e_full - e_pose)


@pytest.mark.parametrize("w", [1.0, 2.0, 3.5])
def test_fused_two_branches_equal_three_when_weights_match(w):
    gen = torch.Generator().manual_seed(0)
    e_uc, e_pose, e_full = (torch.randn(2, 4, 8, 8, generator=gen) for _ in range(3))
    branches, scales = plan("uc_down_full", w, w)
    assert branches == [UNCOND, FULL]
    fused = combine(torch.cat([e_uc, e_full]), scales)
    torch.testing.assert_close(fused, eq7(e_uc, e_pose, e_full, w, w), atol=1e-5, rtol=0)


def test_three_branches_reproduce_eq7_bit_for_bit():
    gen = torch.Generator().manual_seed(1)
    e_uc, e_pose, e_full = (torch.randn(2, 4, 8, 8, generator=gen) for _ in range(3))
    branches, scales = plan("uc_down_full", 2.0, 3.0)
    assert branches == [UNCOND, POSE_ONLY, FULL]
    assert torch.equal(combine(torch.cat([e_uc, e_pose, e_full]), scales), eq7(e_uc, e_pose, e_full, 2.0, 3.0))
    # fusing can be switched off even when the weights match
    assert len(plan("uc_down_full", 2.0, 2.0, fuse=False)[0]) == 3


def test_other_variants_and_unknown_name():
    assert plan("uc_full", 2.0, 3.0) == ([UNCOND, FULL], [3.0])
    assert plan("down_full", 2.0, 3.0) == ([POSE_ONLY, FULL], [3.0])
    with pytest.raises(ValueError, match="not one of"):
        plan("updown", 2.0, 2.0)
