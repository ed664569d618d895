"""Layers against straight-from-the-formula references."""

from __future__ import annotations

import torch

from reid.models.layers import IBN, GeneralizedMeanPooling, NonLocal, SEConv, SELayer


def test_se_linear_formula_and_names() -> None:
    torch.manual_seed(0)
    se = SELayer(32, reduction=16)
    assert sorted(se.state_dict()) == ["fc.0.weight", "fc.2.weight"]
    assert se.state_dict()["fc.0.weight"].shape == (2, 32)
    x = torch.randn(2, 32, 5, 3)
    z = x.mean(dim=(2, 3))
    fc1, fc2 = se.fc[0], se.fc[2]
    assert isinstance(fc1, torch.nn.Linear)
    assert isinstance(fc2, torch.nn.Linear)
    s = torch.sigmoid(torch.relu(z @ fc1.weight.T) @ fc2.weight.T)
    torch.testing.assert_close(se(x), x * s[:, :, None, None])


def test_se_conv_formula_and_names() -> None:
    torch.manual_seed(0)
    se = SEConv(32, reduction=4)
    assert sorted(se.state_dict()) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    x = torch.randn(2, 32, 5, 3)
    z = x.mean(dim=(2, 3))
    sd = se.state_dict()
    h = torch.relu(z @ sd["fc1.weight"].flatten(1).T + sd["fc1.bias"])
    s = torch.sigmoid(h @ sd["fc2.weight"].flatten(1).T + sd["fc2.bias"])
    torch.testing.assert_close(se(x), x * s[:, :, None, None])


def test_ibn_splits_channels_in_half() -> None:
    torch.manual_seed(0)
    ibn = IBN(6).eval()
    sd = ibn.state_dict()
    sd["IN.weight"].uniform_(0.5, 1.5)
    sd["BN.running_mean"].uniform_(-1, 1)
    sd["BN.running_var"].uniform_(0.5, 2)
    x = torch.randn(2, 6, 4, 4) * 3 + 1
    out = ibn(x)
    a = x[:, :3]
    mu, var = a.mean(dim=(2, 3), keepdim=True), a.var(dim=(2, 3), unbiased=False, keepdim=True)
    w, b = sd["IN.weight"][None, :, None, None], sd["IN.bias"][None, :, None, None]
    expected_in = (a - mu) / torch.sqrt(var + 1e-5) * w + b
    rm, rv = sd["BN.running_mean"][None, :, None, None], sd["BN.running_var"][None, :, None, None]
    expected_bn = (x[:, 3:] - rm) / torch.sqrt(rv + 1e-5)
    torch.testing.assert_close(out[:, :3], expected_in, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, 3:], expected_bn, atol=1e-5, rtol=1e-5)


def test_non_local_formula() -> None:
    torch.manual_seed(0)
    nl = NonLocal(8, inter_channels=3).eval()
    with torch.no_grad():
        nl.state_dict()["W.1.weight"].fill_(1.0)
    x = torch.randn(2, 8, 4, 3)
    flat = x.flatten(2)  # B, C, N

    def conv(m: torch.nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
        assert m.bias is not None
        return torch.einsum("oc,bcn->bon", m.weight.flatten(1), t) + m.bias[None, :, None]

    g, theta, phi = conv(nl.g, flat), conv(nl.theta, flat), conv(nl.phi, flat)
    attn = torch.einsum("bci,bcj->bij", theta, phi) / flat.shape[-1]
    y = torch.einsum("bij,bcj->bci", attn, g)
    w_y = nl.W(y.reshape(2, 3, 4, 3))
    torch.testing.assert_close(nl(x), x + w_y)


def test_gem_formula_and_limits() -> None:
    x = torch.rand(2, 4, 3, 5) + 0.1
    gem = GeneralizedMeanPooling(p=3.0, eps=1e-6)
    assert isinstance(gem.p, torch.nn.Parameter)
    expected = x.pow(3).mean(dim=(2, 3), keepdim=True).pow(1 / 3)
    torch.testing.assert_close(gem(x), expected)
    fixed = GeneralizedMeanPooling(p=1.0, learnable=False)
    assert "p" in fixed.state_dict()
    assert not list(fixed.parameters())
    torch.testing.assert_close(fixed(x), x.mean(dim=(2, 3), keepdim=True))
