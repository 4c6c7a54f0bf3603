"""A page that shows a run in a browser: the overlay video beside a 3D view of every person's animated GLB body,
one timeline for both, opened from disk with no server and no network (``maed demo`` writes it as
``index.html``, ``maed render --viewer`` per video, ``maed view`` opens it).

- ``page.py``: the page writer (``write_page``), for any video and GLBs.
- ``demo.py``: the page of a ``maed demo`` output folder (``write_demo_page``).
- ``evaluation.py``: GLBs and pages for the videos ``maed render`` draws from evaluation predictions.
- ``cli.py``: ``maed view``.
- ``page.html``, ``viewer.js``: the page's template and script; ``vendor/``: three.js (scripts/vendor_three.sh).
"""
