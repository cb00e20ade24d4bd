"""In the manner of d2l's ResNet chapter: the Residual block (two 3x3 convs with batch
norm, an optional 1x1 conv on the shortcut), a small ResNet of such blocks with global
average pooling, trained with Adam on the bundled digits."""
import argparse

import torch
from torch import nn
from torch.nn import functional as F

import _data


class Residual(nn.Module):
    """The residual block of ResNet models."""

    def __init__(self, in_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(in_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


blk = Residual(3, 3)
X = torch.rand(4, 3, 6, 6)
print(blk(X).shape)
blk = Residual(3, 6, use_1x1conv=True, strides=2)
print(blk(X).shape)


def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--n-train", type=int, default=1024)
parser.add_argument("--n-test", type=int, default=256)
args = parser.parse_args()
torch.manual_seed(0)

b1 = nn.Sequential(nn.Conv2d(1, 8, kernel_size=3, stride=1, padding=1),
                   nn.BatchNorm2d(8), nn.ReLU(),
                   nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
b2 = nn.Sequential(*resnet_block(8, 8, 1, first_block=True))
b3 = nn.Sequential(*resnet_block(8, 16, 1))
net = nn.Sequential(b1, b2, b3, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(16, 10))
X = torch.rand(size=(1, 1, 28, 28))
for layer in net:
    X = layer(X)
    print(layer.__class__.__name__, 'output shape:\t', X.shape)
print('parameters:', sum(p.numel() for p in net.parameters()))

train_iter, test_iter = _data.load_data_digits(64, n_train=args.n_train, n_test=args.n_test)
optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(args.epochs):
    net.train()
    total_loss, n = 0.0, 0
    for X, y in train_iter:
        optimizer.zero_grad()
        loss = loss_fn(net(X), y)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        n += len(y)
    net.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for X, y in test_iter:
            correct += (net(X).argmax(dim=1) == y).sum().item()
            total += len(y)
    print(f'epoch {epoch + 1}, loss {total_loss / n:.3f}, test acc {correct / total:.3f}')
print(f'final test acc {correct / total:.3f}')
