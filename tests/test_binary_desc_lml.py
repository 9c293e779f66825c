"""LML projection: constraint, range, order, gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zippypoint.binary_desc.binarize import topk_binarize
from zippypoint.binary_desc.lml import lml_projection


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_rows_sum_to_k_inside_unit_interval_and_keep_order(dtype, scale):
    x = torch.randn(200, 256, generator=torch.Generator().manual_seed(0), dtype=dtype) * scale
    y = lml_projection(x, 64)
    assert y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(
        y.double().sum(-1), torch.full((200,), 64.0, dtype=torch.float64), atol=1e-4, rtol=0
    )
    if scale <= 1.0:  # larger values saturate to exactly 0 or 1 in float32
        assert bool(((y > 0) & (y < 1)).all())
    assert bool(((y >= 0) & (y <= 1)).all())
    sorted_y = torch.gather(y, -1, torch.argsort(x, dim=-1))
    assert bool((sorted_y.diff(dim=-1) >= 0).all())


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(2, 64),
    data=st.data(),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-3, 1.0, 30.0, 1e3]),
    ties=st.booleans(),
)
def test_constraint_holds_for_any_k_and_scale(d, data, seed, scale, ties):
    k = data.draw(st.integers(1, d - 1))
    x = torch.randn(7, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = (x.round() if ties else x) * scale  # rounding makes many equal values
    y = lml_projection(x, k)
    assert bool(torch.isfinite(y).all()) and bool(((y >= 0) & (y <= 1)).all())
    torch.testing.assert_close(y.sum(-1), torch.full((7,), float(k), dtype=torch.float64), atol=1e-9, rtol=0)


def test_constant_rows_give_k_over_d():
    y = lml_projection(torch.full((3, 256), 2.5, dtype=torch.float64), 64)
    torch.testing.assert_close(y, torch.full((3, 256), 0.25, dtype=torch.float64), atol=1e-12, rtol=0)


def test_batch_dims_and_shift_invariance():
    x = torch.randn(2, 3, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = lml_projection(x, 4)
    assert y.shape == (2, 3, 16)
    torch.testing.assert_close(y.sum(-1), torch.full((2, 3), 4.0, dtype=torch.float64))
    shifted = x + torch.tensor([5.0, -3.0, 0.5], dtype=torch.float64)[None, :, None]
    torch.testing.assert_close(lml_projection(shifted, 4), y, atol=1e-12, rtol=0)


def test_sharp_inputs_approach_top_k():
    x = torch.randn(50, 256, generator=torch.Generator().manual_seed(2))
    y = lml_projection(x * 1e4, 64)
    assert torch.equal(y > 0.5, topk_binarize(x, 64))


def test_gradcheck_float64():
    x = torch.randn(
        3, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True
    )
    assert torch.autograd.gradcheck(lambda t: lml_projection(t, 3), (x,), eps=1e-6, atol=1e-6)


def test_gradient_matches_central_differences():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(4, 256, generator=gen, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 256, generator=gen, dtype=torch.float64)

    def loss(t):
        return (weights * lml_projection(t, 64) ** 2).sum()

    (grad,) = torch.autograd.grad(loss(x), x)
    direction = torch.randn(4, 256, generator=gen, dtype=torch.float64)
    eps = 1e-5
    with torch.no_grad():
        numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
    torch.testing.assert_close((grad * direction).sum(), numeric, rtol=1e-6, atol=1e-9)
    # y does not change when a constant is added to a row, so neither does the loss.
    torch.testing.assert_close(grad.sum(-1), torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)


def test_saturated_rows_are_exact_and_have_finite_zero_gradient():
    x = torch.cat([torch.full((2, 64), 1e4), torch.zeros(2, 192)], dim=1).requires_grad_()
    y = lml_projection(x, 64)
    assert torch.equal(y, torch.cat([torch.ones(2, 64), torch.zeros(2, 192)], dim=1))
    y.sum().backward()
    assert bool(torch.isfinite(x.grad).all()) and bool((x.grad == 0).all())


def test_empty_batch():
    x = torch.zeros(0, 256, requires_grad=True)
    y = lml_projection(x, 64)
    assert y.shape == (0, 256) and y.dtype == torch.float32
    y.sum().backward()
    assert x.grad.shape == (0, 256)


@pytest.mark.parametrize(
    ("x", "k", "error", "text"),
    [
        (torch.zeros(3, 8), 0, ValueError, "0 < k < D"),
        (torch.zeros(3, 8), 8, ValueError, "0 < k < D"),
        (torch.zeros(3, 8), 2.0, TypeError, "k"),
        (torch.zeros(3, 8, dtype=torch.int64), 2, TypeError, "floating"),
        (torch.tensor([[0.0, float("nan"), 1.0]]), 1, ValueError, "finite"),
        (torch.tensor([[0.0, float("inf"), 1.0]]), 1, ValueError, "finite"),
        (torch.tensor(1.0), 1, ValueError, "scalar"),
    ],
)
def test_refuses_bad_input(x, k, error, text):
    with pytest.raises(error, match=text):
        lml_projection(x, k)
