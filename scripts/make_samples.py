"""Write the bundled demo images: synthetic scenes from our generator (seed 777, never used for
training), saved as PNGs under uniparser_sdk/assets/samples/. Re-running reproduces them exactly."""
from __future__ import annotations

import argparse
from pathlib import Path

from uniparser_sdk.data.synthetic import SyntheticScenes
from uniparser_sdk.io_utils import atomic_imwrite

SEED = 777


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-o", "--out", default=str(Path(__file__).resolve().parents[1] / "uniparser_sdk/assets/samples"))
    ap.add_argument("-n", "--num", type=int, default=4)
    args = ap.parse_args(argv)
    scenes = SyntheticScenes(args.num, seed=SEED, size=(288, 384), persons=(2, 4))
    for i in range(args.num):
        path = Path(args.out) / f"scene_{i:02d}.png"
        atomic_imwrite(path, scenes[i]["image"])
        print(path, path.stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main()
