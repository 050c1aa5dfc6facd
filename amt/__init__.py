"""amt: a controllable symbolic-music co-pilot built on the Anticipatory Music Transformer.

Import namespaces (one distribution, one top-level name):

- ``amt.tokenization``: MIDI <-> AMT tokens, anticipation, corpus preparation (numpy + symusic, no torch).
- ``amt.models``: Transformer (GPT-2 compatible) and Mamba backbones in Hugging Face folder layout.
- ``amt.sampling``: conditional generation (accompany, infill, continue).
- ``amt.training``, ``amt.demo``, ``amt.plugins``: training/evaluation, the web demo, the DAW bridge.

This file stays free of heavy imports so that ``import amt.tokenization`` never pulls in torch.
"""

__version__ = "0.1.0"
