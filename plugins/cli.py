"""``amt serve``: the DAW bridge (HTTP + WebSocket, optionally virtual MIDI ports)."""

from __future__ import annotations

import argparse
import sys

from amt.device import AUTO, DEVICE_HELP, resolve_device


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the ``amt`` parser."""
    parser = subparsers.add_parser(
        "serve",
        help="run the DAW bridge: a local server that writes notes into DAW regions",
        description="Serve a model to DAW scripts over HTTP/WebSocket (see plugins/PROTOCOL.md); with --midi "
        "also record from and play to virtual MIDI ports 'amt in' / 'amt out'.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also serve requests whose Host or Origin names NAME (repeatable); only this "
                        "computer's names (127.0.0.1, localhost, [::1]) are served by default, which keeps "
                        "web pages from driving the bridge. A --host address is allowed too")
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: the built-in model)")
    parser.add_argument("--device", default=AUTO, help=DEVICE_HELP)
    limits = parser.add_argument_group("limits")
    limits.add_argument("--queue", type=int, default=16, help="requests that may wait for the model (16)")
    limits.add_argument("--timeout", type=float, default=120.0, help="seconds one may run or wait (120)")
    limits.add_argument("--max-notes", type=int, default=20_000, help="notes per request (20000)")
    limits.add_argument("--max-region", type=float, default=60.0, help="longest region in seconds (60)")
    limits.add_argument("--max-body", type=int, default=2 * 1024 * 1024, help="request size in bytes (2 MiB)")
    midi = parser.add_argument_group("ports mode")
    midi.add_argument("--midi", action="store_true", help="open MIDI ports (needs amt[midi]: python-rtmidi)")
    midi.add_argument("--midi-in", default="amt in", help="input port name (default 'amt in')")
    midi.add_argument("--midi-out", default="amt out", help="output port name (default 'amt out')")
    midi.add_argument("--existing-ports", action="store_true",
                      help="open existing ports of those names instead of creating virtual ones (Windows)")
    midi.add_argument("--trigger", default="note:0",
                      help="message that starts a generation: note:N or cc:N, optionally @CHANNEL (note:0)")
    midi.add_argument("--midi-task", choices=("accompany", "infill", "continue"), default="accompany",
                      help="what a trigger asks for (accompany the recorded part)")
    midi.add_argument("--midi-bars", type=int, default=4, help="bars to write for --midi-task continue (4)")
    midi.add_argument("--seed", type=int, default=None, help="sampling seed in ports mode")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Load the model, open ports if asked, and serve until interrupted."""
    import threading

    from amt.errors import AmtError
    from amt.models import load_model, resolve_model_name
    from amt.plugins.engine import Limits
    from amt.plugins.ports import PortsBridge, PortsSettings, Trigger, open_ports
    from amt.plugins.server import create_app, serve

    if not 0 < args.port < 65536:
        raise AmtError(f"--port must be 1..65535, got {args.port}")
    if args.queue < 0 or min(args.max_notes, args.max_body) < 1 or min(args.timeout, args.max_region) <= 0:
        raise AmtError("--timeout, --max-notes, --max-region and --max-body must be positive, --queue >= 0")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"amt serve: warning: binding {args.host} lets other computers use this server; it has no "
              "authentication", file=sys.stderr)
    limits = Limits(max_body_bytes=args.max_body, max_notes=args.max_notes,
                    max_region_seconds=args.max_region, timeout_seconds=args.timeout, queue_size=args.queue)
    bridge = ports = None
    if args.midi:
        settings = PortsSettings(trigger=Trigger.parse(args.trigger), task=args.midi_task,
                                 bars=args.midi_bars, seed=args.seed)
        # Open the ports before loading the model, so a missing MIDI backend fails at once.
        ports = open_ports(args.midi_in, args.midi_out, virtual=not args.existing_ports)
    name = resolve_model_name(args.model)
    model = load_model(name, device=resolve_device(args.device))
    stop = threading.Event()
    if ports is not None:
        bridge = PortsBridge(ports[1], settings)
        threading.Thread(target=bridge.serve, args=(ports[0], stop), name="amt-midi-in", daemon=True).start()
        print(f"amt serve: MIDI ports {args.midi_in!r} -> {args.midi_out!r}, trigger {args.trigger}",
              file=sys.stderr)
    # The address the server was told to bind is a name its users will type: allow it (not 0.0.0.0 / ::).
    allowed = [*args.allow_host, *([args.host] if args.host not in ("0.0.0.0", "::") else [])]
    app = create_app(model, model_name=name, limits=limits, bridge=bridge, allowed_hosts=allowed)
    try:
        serve(app, args.host, args.port, ws_max_size=limits.max_body_bytes)
    finally:
        stop.set()
        if ports is not None:
            for port in ports:
                port.close()
    return 0
