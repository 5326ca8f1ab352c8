"""Does sharing one filter set across a photo's cells cost quality? (issue 4, item 2)

HyperUNet develops a photo with one filter set, predicted from the mean of its cells' pooled
embeddings, but trains on single crops that each get filters from their own embedding. This
scores models on CBSD68 photos (never trained on): ``--crops`` crops of ``--crop`` px from
each of ``--photos`` random photos, with one random camera and noise level per photo
(training's synthesis, ``IspSampler(group=...)``), developed two ways:
  * per crop: every crop its own filters (as in training);
  * per photo: each photo's crops share filters from the mean of their embeddings (as the
    cells of one photo do at inference, ``hyperisp.models.pooling_groups``).
experiments/train_test_scale.py instead pools over collages of unrelated photos.

    PYTHONPATH=. python experiments/photo_pooling.py --model isp [--model runs/x/card/isp.json] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hyperisp.pretrained import load_pretrained
from hyperisp.train.datasets import ImageCache, IspSampler, list_images
from hyperisp.train.trainer import validate

CBSD68 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "val" / "cbsd68"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="model name or card path (repeatable; default isp)")
    parser.add_argument("--data", type=Path, default=CBSD68)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--crops", type=int, default=8, help="crops per photo")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sampler = IspSampler(ImageCache(list_images([args.data]), args.crop + 2), args.crop,
                         args.photos * args.crops, group=args.crops)
    batch = sampler.sample(torch.Generator().manual_seed(args.seed))
    cpu = torch.device("cpu")
    rows = []
    for name in args.model or ["isp"]:
        model = load_pretrained(name)
        per_crop = validate(model, batch, "isp", cpu)
        per_photo = validate(model, batch, "isp", cpu, pool_group=args.crops)
        rows.append({"model": name, "per_crop": per_crop, "per_photo": per_photo})
        print(f"{name}: PSNR per crop {per_crop:.2f} dB, per photo {per_photo:.2f} dB "
              f"({per_photo - per_crop:+.2f})", flush=True)
    if args.out:
        command = "PYTHONPATH=. python experiments/photo_pooling.py " + " ".join(
            f"--model {m}" for m in args.model or ["isp"]) + f" --seed {args.seed}"
        args.out.write_text(json.dumps({"command": command, "data": str(args.data), "photos": args.photos,
                                        "crops": args.crops,
                                        "crop": args.crop, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
