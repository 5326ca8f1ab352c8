"""Write the initial, UNTRAINED `isp` and `denoise` weights with honest cards.

Both architectures are residual with a zero-initialised last stage, so before
training `isp` returns exactly the bilinear demosaic of its input and `denoise`
returns its input unchanged. `hyperisp train` (a later issue) replaces them
only when validation improves.

    python experiments/init_weights.py
"""
import torch

from hyperisp.models import create_model
from hyperisp.pretrained import save_pretrained

NOT_TRAINED = {"data": "none (untrained)", "recipe": "experiments/init_weights.py"}

torch.manual_seed(0)
save_pretrained(
    create_model("isp_small"),
    "isp",
    trained=False,
    description="untrained HyperUNet: its residual head is zero, so it outputs the bilinear demosaic",
    training=NOT_TRAINED,
)
save_pretrained(
    create_model("denoise_small"),
    "denoise",
    trained=False,
    description="untrained HyperVDN: its last layer is zero, so it returns its input unchanged",
    training=NOT_TRAINED,
)
