"""Your own two-modality model: does it learn greedily, and does guided re-balancing help? (docs/own-model.md)

The data is a plain PyTorch ``Dataset`` of ``((x0, x1), y)``, ten classes, built so that m0 is a shortcut:

- **m0, the shortcut**: a 16-number code of a class, ``code[c] + N(0, 1)``, the codes drawn N(0, 1): large, well
  separated inputs, learned in a few steps. In the training set c is the label itself, so m0 predicts it perfectly;
  in the test set c is a random class, so m0 is misleading there (the colour of Colored-and-gray MNIST, §5.1).
- **m1, the true signal**: the label's 32-number prototype in unit noise, scaled by 0.2,
  ``0.2 (proto[y] + N(0, 1))``: informative in training and at test alike (about 99% accuracy once learned), but
  its small inputs give small gradients, so it is learned slowly.

A two-branch network of two small MLPs with an MMTM after each layer (Fig. 1) is trained twice, from the same
initialisation and batches: vanilla (§2) and guided re-balancing (Alg. 1). Vanilla is greedy: once branch 1 can read
the shortcut through the fusion, its training loss is low without m1, so it barely learns m1; at test the misleading
m0 flows into it (u(m0|m1) < 0: cutting m0 helps it) and |d_util| is large. Guided sees d_speed < 0 (branch 1's
fusion parameters learn fast relative to its own), takes re-balancing steps that make branch 1 fit y from m1 alone,
and so learns m1: branch 1's and ŷ's test accuracies rise, u(m0|m1) goes to about 0 and |d_util| shrinks.

    python examples/own_model.py [--seed 0] [--epochs 20] [--algorithms vanilla,guided,ogm_ge,gblend,moddrop,pmr]

CPU, a few seconds. ``main(argv)`` returns the printed numbers (the tests run it).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

import repro

CLASSES, DIM0, DIM1, HIDDEN = 10, 16, 32, 32


class ShortcutPairs(Dataset):
    """``n`` samples ((x0, x1), y) of the construction above; ``train=False`` gives m0 a random class."""

    def __init__(self, n: int, codes: torch.Tensor, protos: torch.Tensor, train: bool, generator: torch.Generator):
        self.y = torch.randint(CLASSES, (n,), generator=generator)
        shown = self.y if train else torch.randint(CLASSES, (n,), generator=generator)
        self.x0 = codes[shown] + torch.randn(n, DIM0, generator=generator)
        self.x1 = 0.2 * (protos[self.y] + torch.randn(n, DIM1, generator=generator))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return (self.x0[i], self.x1[i]), self.y[i]


def datasets(seed: int, n_train: int = 2000, n_test: int = 2000) -> tuple[ShortcutPairs, ShortcutPairs]:
    g = torch.Generator().manual_seed(seed)
    codes, protos = torch.randn(CLASSES, DIM0, generator=g), torch.randn(CLASSES, DIM1, generator=g)
    return ShortcutPairs(n_train, codes, protos, True, g), ShortcutPairs(n_test, codes, protos, False, g)


def mlp(inputs: int) -> list[nn.Module]:
    """A backbone cut into two stages (an MMTM can follow each)."""
    return [nn.Sequential(nn.Linear(inputs, HIDDEN), nn.ReLU()), nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.ReLU())]


def train(algorithm_name: str, train_set: Dataset, test_set: Dataset, seed: int, epochs: int) -> dict[str, float]:
    """Your own loop: the algorithm object takes the steps, everything else is plain PyTorch."""
    torch.manual_seed(seed)
    model = repro.two_branch(mlp(DIM0), mlp(DIM1), num_classes=CLASSES, example=((DIM0,), (DIM1,)), fuse_after=[0, 1])
    data = {}
    if algorithm_name == "gblend":  # G-Blending estimates on training data it never trains on: hold out a tenth
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))
        cut = len(train_set) // 10
        data["holdout_set"], train_set = (
            Subset(train_set, order[:cut].tolist()),
            Subset(train_set, order[cut:].tolist()),
        )
    if algorithm_name in ("gblend", "pmr"):  # PMR's prototypes, G-Blending's training losses
        data["train_set"] = train_set
    algorithm = repro.make_algorithm(algorithm_name, model, alpha=0.1, window=5, **data)  # Alg. 1's alpha and Q
    optimizer = torch.optim.SGD(algorithm.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
    kinds = [0, 0, 0]  # steps taken: regular, re-balancing m0, re-balancing m1
    for epoch in range(1, epochs + 1):  # epoch 1 is the warm-up: regular steps only
        algorithm.begin_epoch(epoch)
        algorithm.train()
        for (x0, x1), y in loader:
            step = algorithm.training_step((x0, x1), y, optimizer)
            kinds[int(step.fusion.code) + 1] += 1
    result = repro.utilization_rates(model, DataLoader(train_set, batch_size=500), DataLoader(test_set, batch_size=500))
    return {**result, "d_speed": algorithm.d_speed(), "rebalance_m0": kinds[1], "rebalance_m1": kinds[2]}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="data, initialisation and batch order")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--algorithms", default="vanilla,guided", help="comma-separated names of repro.registry.ALGORITHMS to compare"
    )
    args = parser.parse_args(argv)
    train_set, test_set = datasets(args.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # matrices this small run fastest on one thread
    try:
        names = [a.strip() for a in args.algorithms.split(",") if a.strip()]
        results = {name: train(name, train_set, test_set, args.seed, args.epochs) for name in names}
    finally:
        torch.set_num_threads(threads)
    print("test accuracies in %; u, d_util (Def. 2.1) on the test set; d_speed (Def. 4.1) at the end of training")
    header = ("algorithm", "acc", "f0", "f1", "u(m1|m0)", "u(m0|m1)", "d_util", "d_speed")
    widths = (9, 6, 6, 6, 9, 9, 7, 8)
    print(" ".join(f"{h:>{w}s}" for h, w in zip(header, widths, strict=True)) + "  re-balancing steps m0/m1")
    for name, r in results.items():
        print(
            f"{name:9s} {r['acc']:6.2f} {r['acc_branch0']:6.2f} {r['acc_branch1']:6.2f} {r['u_m1_given_m0']:+9.3f} "
            f"{r['u_m0_given_m1']:+9.3f} {r['d_util']:+7.3f} {r['d_speed']:+8.3f}  {r['rebalance_m0']}/"
            f"{r['rebalance_m1']}"
        )
    return results


if __name__ == "__main__":
    main()
