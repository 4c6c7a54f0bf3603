"""The ``cnn`` encoder: torchvision ResNet-50 with the classifier removed (ORIGINAL.md §1.2).

Parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ...), as in the original's
checkpoints. Weights are never downloaded here: ``maed.models.checkpoint.init_encoder_weights`` loads
a local ImageNet file when one is given.
"""

from __future__ import annotations

import torch
from torch import nn


class ResNet50Encoder(nn.Module):
    """B x 3 x 224 x 224 -> B x 2048 average-pooled features (frames are independent)."""

    feat_dim = 2048
    uses_seqlen = False
    input_kind = "images"

    def __init__(self):
        super().__init__()
        from torchvision.models import resnet50

        net = resnet50(weights=None)
        net.fc = nn.Identity()
        # keep torchvision's attribute names at this level so keys read encoder.conv1.weight etc.
        for name, child in net.named_children():
            self.add_module(name, child)

    def check_seqlen(self, seqlen: int) -> None:
        """Frames are encoded independently: any clip length works."""

    def forward(self, x: torch.Tensor, seqlen: int = 1) -> torch.Tensor:
        x = x.to(self.conv1.weight.dtype)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)
