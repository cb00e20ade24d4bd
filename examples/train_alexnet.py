#!/usr/bin/env python3
"""Train an AlexNet with tinyconv's library API (what ``tinyconv train`` runs).

    python examples/train_alexnet.py                          # small28 on the bundled MNIST digits
    python examples/train_alexnet.py --epochs 8 --lr 0.02
    python examples/train_alexnet.py --variant small32 --data ~/my_images   # train/ and val/ folders
    python examples/train_alexnet.py --resume                 # continue from runs/example/last.npz

The paper's recipe (Krizhevsky et al. 2012, section 5): SGD with momentum 0.9 and
weight decay 5e-4, the learning rate divided by 10 when the validation error stops
improving; random crops, flips (and PCA colour noise on RGB images); mean subtraction.
Checkpoints (``last.npz``, ``best.npz``), the learning curves (``curves.png``) and the
first layer's filters (``filters.png``, the paper's Figure 3) land in ``--out``.
"""
import argparse

from tinyconv.train import TrainConfig, train


def main():
    d = TrainConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default=d.variant)
    ap.add_argument("--data", default=d.data)
    ap.add_argument("--device", default=d.device)
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--out", default="runs/example")
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()

    cfg = TrainConfig(variant=a.variant, data=a.data, device=a.device, epochs=a.epochs,
                      batch_size=a.batch_size, lr=a.lr, seed=a.seed, out=a.out, resume=a.resume)
    result = train(cfg)

    h = result["history"]
    print("\nepoch  train loss  val top-1 err  val top-5 err  lr")
    for e, (loss, t1, t5, lr) in enumerate(zip(h["train_loss"], h["val_top1_error"],
                                               h["val_top5_error"], h["lr"]), 1):
        print(f"{e:5d}  {loss:10.4f}  {t1:13.2%}  {t5:13.2%}  {lr:g}")
    print(f"\ntest accuracy {result['test_accuracy']:.2%}, checkpoint {result['best_checkpoint']}")
    print(f"try: python examples/predict.py IMAGE --checkpoint {result['best_checkpoint']}")


if __name__ == "__main__":
    main()
