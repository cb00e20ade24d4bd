#!/usr/bin/env python3
"""Classify images with a trained tinyconv checkpoint, by hand (what ``tinyconv predict`` does).

    python examples/predict.py digit.png --checkpoint runs/example/best.npz [--ten-crop]

Every step is spelled out: load the checkpoint safely (arrays and JSON only), rebuild
the AlexNet variant its metadata names, apply the training run's preprocessing (shorter
side resized, centre crop or the paper's ten crops, mean subtraction), and average the
softmax over the crops.
"""
import argparse

import numpy as np

import tinyconv
import tinyconv.nn.functional as F
from tinyconv.checkpoint import load_checkpoint
from tinyconv.data import load_image
from tinyconv.data import transforms as T
from tinyconv.models import alexnet


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--ten-crop", action="store_true")
    a = ap.parse_args()

    ckpt = load_checkpoint(a.checkpoint)                 # refuses truncated or edited files
    meta = ckpt["meta"]
    model = alexnet(num_classes=meta["num_classes"], variant=meta["variant"],
                    in_channels=meta["in_channels"], init="default")
    model.load_state_dict(ckpt["model_state"])
    model.eval()                                         # dropout off
    p = meta["preprocess"]
    normalize = T.Normalize(p["mean"], p["std"])

    for path in a.images:
        x = T.ToArray()(T.Resize(p["resize"])(load_image(path, p["mode"])))   # CHW float32 in [0, 1]
        crops = T.TenCrop(p["crop"])(x) if a.ten_crop else T.CenterCrop(p["crop"])(x)[None]
        batch = np.stack([normalize(c) for c in crops])
        with tinyconv.no_grad():
            probs = F.softmax(model(tinyconv.tensor(batch)), dim=1).numpy().mean(axis=0)
        print(path)
        for i in np.argsort(-probs)[:5]:
            print(f"  {probs[i]:7.2%}  {meta['classes'][i]}")


if __name__ == "__main__":
    main()
