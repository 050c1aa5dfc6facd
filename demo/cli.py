"""``amt demo``: start the web demo."""

from __future__ import annotations

import argparse

from amt.device import AUTO, DEVICE_HELP, resolve_device


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand to the ``amt`` parser."""
    parser = subparsers.add_parser(
        "demo",
        help="start the web demo (upload MIDI, choose what to keep, hear the result)",
        description="Start the Gradio web demo on http://HOST:PORT. Generation runs one request at a time.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 to serve the local network)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    parser.add_argument("--model", action="append", default=None,
                        help="model folder or Hugging Face Hub id (default: the built-in model); repeat it "
                        "to offer more in the page's model picker (the first is loaded at start)")
    parser.add_argument("--device", default=AUTO, help=DEVICE_HELP)
    parser.add_argument("--share", choices=("on", "off"), default="off",
                        help="also publish a temporary public gradio.live link (default off)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="use at most this many seconds of an input piece (default 60)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the model, then serve the page until interrupted."""
    from amt.errors import AmtError
    from amt.models import load_model, resolve_model_name

    if not 1 <= args.port <= 65535:
        raise AmtError(f"--port must be 1-65535, not {args.port}")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise AmtError(f"--max-seconds must be positive, not {args.max_seconds:g}")
    names = args.model or []
    name = resolve_model_name(names[0] if names else None)  # before the slow imports: fail at once

    from amt.demo.app import DemoApp
    from amt.demo.callbacks import MAX_PIECE_SECONDS

    max_seconds = MAX_PIECE_SECONDS if args.max_seconds is None else args.max_seconds
    print(f"amt demo: loading {name}", flush=True)
    model = load_model(name, device=resolve_device(args.device))
    app = DemoApp(model, model_name=name, models=names[1:], max_seconds=max_seconds)
    if app.audio_note:
        print(f"amt demo: {app.audio_note}", flush=True)
    try:
        app.launch(host=args.host, port=args.port, share=args.share == "on")
    except OSError as error:  # port taken, address not available
        raise AmtError(f"cannot serve on {args.host}:{args.port}: {error}") from error
    finally:
        app.close()
    return 0
