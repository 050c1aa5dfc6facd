"""Grid: new notes start and end on the steps of a grid (``SamplingOptions.grid`` steps per quarter note
through the piece's tempo map), like a DAW's quantise.

Where no grid step lies within reach of the next onset, the row waits (writes a REST). A note's duration
is snapped so that it ends on a step where one is within reach; a zero duration (a REST) stays as allowed
as it was.
"""

from __future__ import annotations

import numpy as np
import torch

from amt.sampling.constraints.base import REACH, Constraint, Setup


class Grid(Constraint):
    def __init__(self, steps: np.ndarray, end: int):
        self.on_grid = np.zeros(end + REACH + 1, dtype=bool)  # True on the steps (absolute ticks)
        steps = np.asarray(steps, dtype=np.int64)
        self.on_grid[steps[(steps >= 0) & (steps < len(self.on_grid))]] = True

    @classmethod
    def build(cls, setup: Setup) -> Grid | None:
        if setup.grid_step is None:
            return None
        return cls(setup.time_map.grid_ticks(setup.grid_step, setup.end + REACH), setup.end)

    def _snap(self, mask: torch.Tensor, starts: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Restrict ``mask`` ``[rows, size]`` (column j: tick ``starts[row] + j``) to the grid's steps; rows
        with no allowed step keep their mask. Returns the mask and which rows found a step."""
        index = starts[:, None] + np.arange(mask.shape[1])
        snapped = mask & torch.from_numpy(self.on_grid[index]).to(mask.device)
        found = snapped.any(dim=1)
        return torch.where(found[:, None], snapped, mask), found.cpu().numpy()

    def onset_mask(self, decoder, mask: torch.Tensor, wait: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        # Off the grid only a REST may be written: the next onset waits for a step.
        mask, found = self._snap(mask, decoder.base)
        return mask, wait | ~found

    def duration_mask(self, decoder, mask: torch.Tensor, onset: np.ndarray) -> torch.Tensor:
        rest = mask[:, 0].clone()
        mask, _ = self._snap(mask, onset)
        mask[:, 0] = rest  # a zero duration marks a REST (the engine's note mask): allowed as it was before
        return mask
