"""The hybrid backbone's convolution follows the original's weight standardisation and SAME padding."""

import torch
import torch.nn.functional as F

from maed.models.ste import StdConv2dSame, build_hybrid_backbone


def test_std_conv_matches_the_original_formula():
    torch.manual_seed(0)
    conv = StdConv2dSame(3, 8, kernel_size=7, stride=2)
    x = torch.randn(1, 3, 224, 224)
    w = conv.weight
    mean = w.mean(dim=(1, 2, 3), keepdim=True)
    std = ((w - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True).sqrt()  # biased
    w_std = (w - mean) / (std + 1e-5)
    # TF SAME for 224 -> 112 with k=7, s=2: 5 pixels of padding, 2 before and 3 after
    expected = F.conv2d(F.pad(x, [2, 3, 2, 3]), w_std, stride=2)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


def test_backbone_output_grid():
    net = build_hybrid_backbone().eval()
    with torch.no_grad():
        assert net.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 1024, 14, 14)
    assert isinstance(net.stem.conv, StdConv2dSame) and net.stem.norm.num_groups == 32
