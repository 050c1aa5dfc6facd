"""The DAW bridge: a local server (HTTP JSON + WebSocket, optionally virtual MIDI ports) and DAW scripts.

``amt serve`` (``amt.plugins.cli``) runs ``amt.plugins.server``; the wire format is ``amt.plugins.protocol``
(documented in PROTOCOL.md); ``amt.plugins.engine`` turns a request in beats into sampler calls and back.
The REAPER and Ableton Live scripts live in ``reaper/`` and ``ableton/``.
"""
