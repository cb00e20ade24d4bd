"""In the manner of d2l's AlexNet chapter (d2l.ai, "Deep Convolutional Neural Networks"):
the net as one nn.Sequential with the chapter's kernel sizes, strides and paddings (channel
widths divided by 8 so that it trains on a CPU in seconds), 1-channel digits enlarged to
112x112 (the chapter enlarges Fashion-MNIST to 224x224), and d2l's training loop with its
accuracy counting.  ``--epochs``, ``--n-train``, ``--n-test`` keep a CI run short."""
import argparse

import torch
from torch import nn

import _data

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--n-train", type=int, default=512)
parser.add_argument("--n-test", type=int, default=256)
parser.add_argument("--lr", type=float, default=0.05)
args = parser.parse_args()
torch.manual_seed(0)

net = nn.Sequential(
    # a large 11x11 window with stride 4 to capture objects; then pooling
    nn.Conv2d(1, 12, kernel_size=11, stride=4, padding=1), nn.ReLU(),
    nn.MaxPool2d(kernel_size=3, stride=2),
    # a smaller window, padding 2 keeps height and width; more channels
    nn.Conv2d(12, 32, kernel_size=5, padding=2), nn.ReLU(),
    nn.MaxPool2d(kernel_size=3, stride=2),
    # three convolutions with 3x3 windows
    nn.Conv2d(32, 48, kernel_size=3, padding=1), nn.ReLU(),
    nn.Conv2d(48, 48, kernel_size=3, padding=1), nn.ReLU(),
    nn.Conv2d(48, 32, kernel_size=3, padding=1), nn.ReLU(),
    nn.MaxPool2d(kernel_size=3, stride=2),
    nn.Flatten(),
    # the fully connected layers, with dropout against overfitting
    nn.Linear(32 * 2 * 2, 256), nn.ReLU(), nn.Dropout(p=0.5),
    nn.Linear(256, 256), nn.ReLU(), nn.Dropout(p=0.5),
    nn.Linear(256, 10))

X = torch.randn(1, 1, 112, 112)
for layer in net:
    X = layer(X)
    print(layer.__class__.__name__, 'output shape:\t', X.shape)


def accuracy(y_hat, y):
    """The number of correct predictions (d2l.accuracy)."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def evaluate_accuracy(net, data_iter):
    """Accuracy of a model on a dataset (d2l.evaluate_accuracy_gpu)."""
    net.eval()
    correct, total = 0.0, 0
    with torch.no_grad():
        for X, y in data_iter:
            correct += accuracy(net(X), y)
            total += y.numel()
    return correct / total


def init_weights(m):
    if type(m) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(m.weight)


def train(net, train_iter, test_iter, num_epochs, lr, device):
    """Train a model (d2l.train_ch6)."""
    net.apply(init_weights)
    print('training on', device)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    loss = nn.CrossEntropyLoss()
    for epoch in range(num_epochs):
        net.train()
        metric = [0.0, 0.0, 0]                  # sum of loss, correct, examples
        for X, y in train_iter:
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)
            l.backward()
            optimizer.step()
            with torch.no_grad():
                metric[0] += l * X.shape[0]
                metric[1] += accuracy(y_hat, y)
                metric[2] += X.shape[0]
        train_l = float(metric[0]) / metric[2]
        train_acc = metric[1] / metric[2]
        test_acc = evaluate_accuracy(net, test_iter)
        print(f'epoch {epoch + 1}, loss {train_l:.3f}, train acc {train_acc:.3f}, test acc {test_acc:.3f}')
    return test_acc


batch_size = 32
train_iter, test_iter = _data.load_data_digits(batch_size, n_train=args.n_train,
                                               n_test=args.n_test, scale=4)
device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
test_acc = train(net, train_iter, test_iter, args.epochs, args.lr, device)
print(f'final test acc {test_acc:.3f}')
