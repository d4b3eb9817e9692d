"""ddp-trainer's residual blocks (Note [residual blocks]) as PyTorch modules, their parameters
named as ddp-trainer names them (a block's `layers` and `shortcut` lists of its parameterized
layers), so that state_dicts go both ways as they are: for benchmarks/torch_workloads.py (W8) and
tests/interop/torch_residual.py."""

import torch

F = torch.nn.functional


class Block(torch.nn.Module):
    """He et al.'s basic block: conv 3x3 (stride), BN, ReLU, conv 3x3, BN; plus the input, or
    where the stride or width changes its projection (conv 1x1 of the stride, BN); then ReLU."""

    def __init__(self, channels, filters, stride, bias, eps):
        super().__init__()
        self.stride = stride
        self.layers = torch.nn.ModuleList([
            torch.nn.Conv2d(channels, filters, 3, stride=stride, bias=False),
            torch.nn.BatchNorm2d(filters, eps=eps),
            torch.nn.Conv2d(filters, filters, 3, padding=1, bias=bias),
            torch.nn.BatchNorm2d(filters, eps=eps)])
        if stride > 1 or channels != filters:
            self.shortcut = torch.nn.ModuleList([
                torch.nn.Conv2d(channels, filters, 1, stride=stride, bias=False),
                torch.nn.BatchNorm2d(filters, eps=eps)])

    def forward(self, x):
        # Keras' (and ddp-trainer's) "same" padding of a strided convolution puts the odd row and
        # column after the image; PyTorch's padding=1 would pad both sides.
        padded = F.pad(x, (0, 1, 0, 1) if self.stride > 1 else (1, 1, 1, 1))
        y = torch.relu(self.layers[1](self.layers[0](padded)))
        y = self.layers[3](self.layers[2](y))
        side = self.shortcut[1](self.shortcut[0](x)) if hasattr(self, "shortcut") else x
        return torch.relu(y + side)


class ResNet(torch.nn.Module):
    """A stem (conv 3x3 same without a bias, BN, ReLU, and 2x2 max pooling where `stem_pool`),
    blocks of (filters, stride), global average pooling and a dense layer to the logits, over
    NHWC samples flattened as ddp-trainer reads them."""

    def __init__(self, image, stem, blocks, classes, stem_pool=False, bias=False, eps=1e-3,
                 channels_last=False):
        super().__init__()
        self.image, self.stem_pool = image, stem_pool
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        layers = [torch.nn.Conv2d(image[2], stem, 3, padding=1, bias=False),
                  torch.nn.BatchNorm2d(stem, eps=eps)]
        channels = stem
        for filters, stride in blocks:
            layers.append(Block(channels, filters, stride, bias, eps))
            channels = filters
        self.layers = torch.nn.ModuleList(layers + [torch.nn.Linear(channels, classes)])

    def forward(self, x):  # logits; x: (N, h * w * c), NHWC
        h, w, c = self.image
        x = x.view(-1, h, w, c).permute(0, 3, 1, 2).contiguous(memory_format=self.memory_format)
        x = torch.relu(self.layers[1](self.layers[0](x)))
        if self.stem_pool:
            x = F.max_pool2d(x, 2)
        for block in self.layers[2:-1]:
            x = block(x)
        return self.layers[-1](x.mean(dim=(2, 3)))


def fashion_mnist_resnet(channels_last=False):
    """W8, configs/fashion_mnist_resnet.yaml."""
    model = ResNet((28, 28, 1), 16, [(16, 1), (32, 2), (32, 1)], 10, stem_pool=True,
                   channels_last=channels_last)
    return model.to(memory_format=torch.channels_last) if channels_last else model
