"""The sampler's output layer: where nearly every row of a block may be drawn, it multiplies by a view of the
weight instead of copying the rows out first (12.7 MB per note step for the built-in model), and scores the
same tokens as the copy would (the logits differ by float rounding only)."""

from __future__ import annotations

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from amt.models import create_model, tiny_config
from amt.sampling import SamplingOptions, generate
from amt.tokenization.vocab import DUR_OFFSET, MAX_PITCH, NOTE_OFFSET, TIME_OFFSET


class WeightGathers(TorchFunctionMode):
    """Counts indexing of the output weight by a tensor of rows (a gather, which copies those rows)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight, self.gathers = weight, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.__getitem__ and args[0] is self.weight and isinstance(args[1], torch.Tensor):
            self.gathers += 1
        return func(*args, **(kwargs or {}))


def test_free_sampling_multiplies_by_a_view_of_the_output_rows():
    torch.manual_seed(0)
    model = create_model(tiny_config()).eval()
    history = np.array([(TIME_OFFSET + t, DUR_OFFSET + 40, NOTE_OFFSET + 60 + t // 50 % 12)
                        for t in range(0, 400, 50)], dtype=np.int64)
    kwargs = dict(history=history, controls=np.zeros((0, 3), np.int64), start_time=400, end_time=900,
                  variations=2)
    with torch.no_grad(), WeightGathers(model.output_weight()) as spy:
        free = generate(model, options=SamplingOptions(seed=3), **kwargs)
    assert sum(len(v) for v in free) > 10 and spy.gathers == 0
    # Two instruments far apart in the note block: a view would span 127 of them, so the rows are gathered.
    with torch.no_grad(), WeightGathers(model.output_weight()) as spy:
        sparse = generate(model, options=SamplingOptions(seed=3, instruments=[0, 127]), **kwargs)
    assert spy.gathers > 0
    notes = np.concatenate(sparse)[:, 2] - NOTE_OFFSET
    assert set(notes // MAX_PITCH) <= {0, 127}
