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
