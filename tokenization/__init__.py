"""MIDI <-> Anticipatory Music Transformer tokens (numpy and symusic only: no torch here)."""
