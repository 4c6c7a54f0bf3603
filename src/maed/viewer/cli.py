"""``maed view``: open a run's viewer page (the overlay video beside the 3D bodies) in a web browser."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from maed.errors import DataError

EPILOG = """\
examples:
  maed view output/                  # the page `maed demo --out output/` wrote (index.html)
  maed view visual/downtown.html     # a page written by maed render's --viewer option

The page opens from disk: no server, no network. Without a display (over ssh, in a container) the path is
printed instead; copy the folder to a machine with a browser and open index.html there. A demo folder
written with --no-viewer (or by an older maed) gets its index.html written first.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "view",
        help="open a run's page: the overlay video and the 3D bodies in a browser",
        description="Open the page of a `maed demo` output folder (index.html; written first when missing) or a "
        "page written by maed render's --viewer option in the default web browser.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="OUTPUT_DIR", help="the --out folder of `maed demo`, or a page (.html)")
    p.add_argument("--no-browser", action="store_true", help="print the page's path instead of opening it")
    p.set_defaults(func=run)


def find_page(target: str | os.PathLike) -> tuple[Path, bool]:
    """The page to open for ``target`` and whether it was written now: an ``.html`` file as given; a folder's
    ``index.html``, written from the demo outputs it holds when missing. :class:`DataError` otherwise."""
    import json

    from maed.viewer.demo import (  # start-up: keeps `maed --help` light (torch and the networks load only when used)
        PAGE_FILE,
        TRACKS_FILE,
        write_demo_page,
    )

    target = Path(target)
    if target.is_file():
        if target.suffix.lower() not in (".html", ".htm"):
            raise DataError(f"{target}: not a page; expected a `maed demo` output folder or an .html file")
        return target, False
    if not target.is_dir():
        raise DataError(f"{target}: not found; expected the --out folder of `maed demo` (holding {PAGE_FILE})")
    page = target / PAGE_FILE
    if page.is_file():
        return page, False
    summary = target / "summary.json"
    if not (summary.is_file() and (target / TRACKS_FILE).is_file()):
        pages = sorted(target.glob("*.html"))
        hint = f"; it holds {', '.join(p.name for p in pages[:5])}: name one" if pages else ""
        raise DataError(
            f"{target}: holds no {PAGE_FILE}, nor the summary.json and {TRACKS_FILE} of a `maed demo` run to write "
            f"it from{hint}"
        )
    try:
        outputs = json.loads(summary.read_text())["outputs"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{summary}: not a readable demo summary ({type(e).__name__}: {e})") from None
    present = [name for name in outputs if (target / name).is_file()]
    write_demo_page(target, present)
    return page, True


def has_display() -> bool:
    """Whether a graphical browser can open here: always on macOS and Windows; on Linux and other Unixes only
    with an X11 or Wayland display (without one, Python's webbrowser would start a text browser)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(args: argparse.Namespace) -> int:
    import webbrowser

    page, written = find_page(args.target)
    if written:
        print(f"wrote {page} (and {page.parent / 'viewer'}/)")
    url = page.resolve().as_uri()
    if args.no_browser or not has_display():
        reason = "" if args.no_browser else " (no display here: open it in a browser on a machine with one)"
        print(f"{page}{reason}\n{url}")
        return 0
    if not webbrowser.open(url):
        print(f"no web browser found; open {url}")
        return 0
    print(f"opened {url}")
    return 0
