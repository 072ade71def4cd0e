"""evonas from Python: search, look at the result, train the best cell, export it, report the run.

    python examples/quickstart.py                       # a real short search on CIFAR-10
    python examples/quickstart.py --dataset synthetic --budget 12 --epochs 1 --train-images 64

The second line is what the test suite runs (seconds, no data needed).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import evonas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-dir", default=None, help="dataset folder (default: $EVONAS_DATA or the user cache)")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="evonas-quickstart-")))
    args = parser.parse_args()

    # 1. search: aging evolution scored by Sweetimator (the interval is given, so no calibration runs)
    run = evonas.search(space="nb201", estimator="sweet", budget=args.budget, population=min(25, args.budget),
                        dataset=args.dataset, data_dir=args.data_dir, interval=(1e-4, 5e-4),
                        run_dir=args.out / "run", progress=False)
    print(run)
    for cell in run.top(3):
        print(f"  {cell.score:>10.0f}  {cell.genotype}")

    # 2. the same run read back from its folder, as after a restart
    run = evonas.Run.load(args.out / "run")
    best = run.best

    # 3. train the best cell (a few epochs here; the published recipe is 200)
    [result] = evonas.train(run, top=1, epochs=args.epochs, train_images=args.train_images, test_images=500,
                            channels=8, layers=1, progress=False)
    print(f"trained {best.genotype}: {result['test_accuracy']:.2f}% test accuracy -> {result['out_dir']}")

    # 4. take it away: TorchScript loads with torch alone; a diagram; an HTML report
    exported = evonas.export(result["out_dir"], "torchscript", data_dir=args.data_dir, check_images=16)
    print(f"exported {exported['path']} (max |logit diff| {exported['check']['max_abs_diff']:.2g})")
    print(f"drew {evonas.draw('nb201', best.genotype, args.out / 'best.png')}")
    print(f"report {evonas.report(run)}")

    # 5. any network of the space, as a plain nn.Module
    model = evonas.build("nb201", best.genotype, num_classes=10)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters in the evaluation network")


if __name__ == "__main__":
    try:
        main()
    except evonas.EvonasError as exc:  # every user error, with the CLI's one-line message
        raise SystemExit(f"error: {exc}") from None
