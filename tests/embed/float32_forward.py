"""The float64 reference of a TinyBackbone forward and the float32 rounding it allows.

A float32 sum of n products is off from the exact sum by rounding errors that grow like
sqrt(n) * eps * sum|w x| (eps = 1.19e-7), in whatever order a kernel set adds them: the
random-sign model of rounding (the worst case n * eps needs every rounding in one direction). The
TinyBackbone's longest sums are the fc's 8 * 14 * 14 = 1568 products; its two convolutions (75
and 72 products) round their outputs by about sqrt(75) * eps = 1e-6 relative, which the fc
carries through with the same sum|w x| weight: at most as much again. So a float32 forward is
within 2 * sqrt(1568) * eps * sum|w x| of the float64 one, sum|w x| taken over the fc's terms.
"""

import copy

import numpy as np
import torch

from facebench.data.images import DEFAULT_CONVENTION

EPS32 = float(torch.finfo(torch.float32).eps)  # 1.19e-7


def float64_forward(module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, allowed float32 error) of ``module`` on float64 NCHW ``x``, both float64 (N, d):
    the error is 2 * sqrt(n) * eps * sum|w x| of each output's fc sum (see the module text)."""
    exact = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(x))
        features = exact.features(t).flatten(1)
        out = exact.fc(features)
        terms = features.abs() @ exact.fc.weight.abs().T + exact.fc.bias.abs()
    n = features.shape[1]
    return out.numpy(), 2 * np.sqrt(n) * EPS32 * terms.numpy()


def _rounding(m, inputs, out):
    """The float32 rounding error allowed to each element of ``m``'s output: sqrt(n) * eps *
    sum|w x| + |b| for a convolution or linear layer (n products, the random-sign model above;
    + 2 eps for a BN folded into it by export), 2 eps of the BN's |s x| + |shift|, (sqrt(n) + 2)
    eps of the mean |x| of an average pool's n inputs (its sum, then the division), and 2 eps of
    the output elsewhere (PReLU, a residual add in a composite module)."""
    x = inputs[0]
    if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
        n = m.weight[0].numel()
        bias = None if m.bias is None else m.bias.abs()
        if isinstance(m, torch.nn.Linear):
            terms = torch.nn.functional.linear(x.abs(), m.weight.abs(), bias)
        else:
            terms = m._conv_forward(x.abs(), m.weight.abs(), bias)
        return (np.sqrt(n) + 2) * EPS32 * terms
    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
        scale = m.weight / torch.sqrt(m.running_var + m.eps)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        shift = m.bias - m.running_mean * scale
        return 2 * EPS32 * ((scale.view(shape) * x).abs() + shift.abs().view(shape))
    if isinstance(m, torch.nn.AdaptiveAvgPool2d):
        n = x[0, 0].numel() // out[0, 0].numel()
        return (
            (np.sqrt(n) + 2)
            * EPS32
            * torch.nn.functional.adaptive_avg_pool2d(x.abs(), m.output_size)
        )
    return 2 * EPS32 * out.abs()


def float32_bound(module, x: np.ndarray, flip_sum: bool = False, normalize: bool = False):
    """(outputs, allowed float32 error) of any feed-forward ``module`` on float64 NCHW ``x``,
    both float64 (N, d), to first order: each layer's rounding (:func:`_rounding`, at the
    float64 activations) carried to each output by the absolute value of its gradient there,
    plus 4 eps of the input the same way ((x - mean) / std: 2; an export's convention adapter
    x * scale + shift: 2 more). ``flip_sum`` adds the mirrored
    image's output and error; ``normalize`` divides by the norm as ``embed_images`` does.
    """
    exact = copy.deepcopy(module).double().eval()
    for p in exact.parameters():
        p.requires_grad_(False)
    out, error = 0, 0
    for view in [x, x[..., ::-1]] if flip_sum else [x]:
        t = torch.from_numpy(np.ascontiguousarray(view)).requires_grad_(True)
        layers = [(t, 4 * EPS32 * t.detach().abs())]

        def keep(m, inputs, output, layers=layers):
            output.retain_grad()
            layers.append((output, _rounding(m, [i.detach() for i in inputs], output.detach())))

        hooks = [m.register_forward_hook(keep) for m in exact.modules() if m is not exact]
        y = exact(t)
        for h in hooks:
            h.remove()
        err = np.zeros(y.shape)
        for o in range(y.shape[1]):  # the images are independent: one backward per output
            for tensor, _ in layers:
                tensor.grad = None
            y[:, o].sum().backward(retain_graph=True)
            for tensor, e in layers:
                err[:, o] += (tensor.grad.abs() * e).flatten(1).sum(1).numpy()
        out, error = out + y.detach().numpy(), error + err
    if normalize:
        # dividing by the norm: each error over the norm, plus the norm's own error
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / norm
        error = (error + np.abs(out) * np.linalg.norm(error, axis=1, keepdims=True)) / norm
    return out, error + EPS32 * np.abs(out)  # and the float32 result's own rounding


def float32_bound_on_images(module, rgb, convention, flip_sum=False, normalize=False):
    """:func:`float32_bound` of uint8 RGB ``(N, H, W, 3)`` images fed as ``convention`` says."""
    x = np.asarray(rgb, dtype=np.float64)
    if convention.color == "BGR":
        x = x[..., ::-1]
    x = ((x - convention.mean) / convention.std).transpose(0, 3, 1, 2)
    return float32_bound(module, x, flip_sum, normalize)


def assert_both_within(a, b, module, rgb, convention=DEFAULT_CONVENTION, **options):
    """Two float32 computations of ``module`` on ``rgb``: each within the float32 rounding of
    the float64 result (:func:`float32_bound_on_images`), so within twice it of each other."""
    _, error = float32_bound_on_images(module, rgb, convention, **options)
    assert np.all(np.abs(a - b) <= 2 * error), np.abs(a - b).max()
