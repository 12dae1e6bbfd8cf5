"""The minimal script the whole command is measured against (PERFORMANCE.md): CSV in, weights out.

    python -m bench.minimal_command --data W1.csv --target label --out weights.pt
                                    [--epochs 5] [--batch-size 256] [--lr 0.001] [--hidden 256]

It does what a careful person would write by hand for the same job and nothing more: read the CSV
with pandas, keep 70% of the rows (a seeded shuffle) for training, standardise them, train the
W1 network (Linear-ReLU-Linear-ReLU-Linear) with Adam on a yes/no target with the minimal loop of
PERFORMANCE.md, and ``torch.save`` the weights. No validation, no test score, no baseline, no
export. The last line of stdout is a JSON object with its training seconds.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

TRAIN_FRACTION = 0.7
SEED = 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.minimal_command", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args(argv)

    table = pd.read_csv(args.data)
    y = table.pop(args.target).to_numpy(np.float32)[:, None]  # (N, 1): 0 / 1
    X = table.to_numpy(np.float32)  # (N, F)
    rows = np.random.default_rng(SEED).permutation(len(X))[: int(TRAIN_FRACTION * len(X))]
    X, y = X[rows], y[rows]
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-8)

    started = time.perf_counter()
    torch.manual_seed(SEED)
    features = torch.from_numpy(np.ascontiguousarray(X))
    targets = torch.from_numpy(y)
    model = nn.Sequential(
        nn.Linear(X.shape[1], args.hidden), nn.ReLU(),
        nn.Linear(args.hidden, args.hidden), nn.ReLU(),
        nn.Linear(args.hidden, 1),
    )
    loss_fn = nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    for _ in range(args.epochs):
        order = torch.randperm(len(features))
        for start in range(0, len(features), args.batch_size):
            idx = order[start:start + args.batch_size]
            loss = loss_fn(model(features[idx]), targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(model.state_dict(), args.out)
    print(json.dumps({"train_s": time.perf_counter() - started, "final_loss": loss.item()}))


if __name__ == "__main__":
    main()
