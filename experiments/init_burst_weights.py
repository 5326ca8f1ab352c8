"""Write the initial, UNTRAINED `burst` weights (a Gated-KPN, M = 128) with an honest card.

The Gated-KPN starts as "mean of the frames" (multiplier 1, F's first channel the
frame mean, G reading only that channel; see hyperisp/models/kpn.py), so before
training `hyperisp burst` returns the plain average of the (unaligned) frames.
Training (a later issue) replaces it.

    PYTHONPATH=. python experiments/init_burst_weights.py
"""
import torch

from hyperisp.models import create_model
from hyperisp.pretrained import save_pretrained

torch.manual_seed(0)
save_pretrained(
    create_model("gated_kpn_128"),
    "burst",
    trained=False,
    description="untrained Gated-KPN (M=128): it returns the mean of the frames, without alignment",
    training={"data": "none (untrained)", "recipe": "experiments/init_burst_weights.py"},
)
