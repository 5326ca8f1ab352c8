"""The filter view: a fixed-size sample of a photo that its filters are predicted from.

Hyper models train on small crops, each predicting filters from its own pooled
embedding. A whole photo pooled at once is a statistic they never saw (a max over 12 MP
keeps growing with the area; even a CBSD68 image loses 0.3-0.6 dB, see
experiments/results/train_test_scale_*.md). The view keeps training's statistic at any
size: up to ``grid`` x ``grid`` patches of training-crop size, spread evenly over the
photo, each pooled alone as a training crop is, their pooled embeddings averaged.
"""
from __future__ import annotations

from typing import Optional

from hyperisp.nn.padding import padded_length


def view_boxes(height: int, width: int, size: int, grid: int, multiple: int,
               min_size: int = 0) -> Optional[list[tuple[int, int, int, int]]]:
    """The filter view of an (unpadded) ``height`` x ``width`` image: (top, left, h, w) boxes.

    Boxes index the image padded as the network pads it (to ``multiple``, at least
    ``min_size``). A side that fits in ``size`` once padded is spanned whole; along a longer
    side, ``min(grid, ceil(length / size))`` patches of ``size`` are spread evenly, corners at
    multiples of ``multiple`` inside the unpadded image. None when the whole image fits in one
    patch (it is then its own view: per-sample pooling, as in training) or ``size`` is 0.
    """
    if size and (size % multiple or grid < 1):
        raise ValueError(f"expected a view size that is a multiple of {multiple} and grid >= 1, got {size}, {grid}")

    def axis(length: int) -> tuple[int, list[int]]:
        padded = padded_length(length, multiple, min_size)
        if padded <= size:
            return padded, [0]
        count = min(grid, -(-length // size))
        starts = [(length - size) // 2] if count == 1 else [
            round(i * (length - size) / (count - 1)) for i in range(count)
        ]
        return size, sorted({a // multiple * multiple for a in starts})

    if size == 0 or max(padded_length(n, multiple, min_size) for n in (height, width)) <= size:
        return None
    (box_h, tops), (box_w, lefts) = axis(height), axis(width)
    return [(top, left, box_h, box_w) for top in tops for left in lefts]
