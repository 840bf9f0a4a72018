"""Item images as the chat server serves them: small copies (thumbnails) in a folder that holds
nothing else, so the web server never serves the user's data folder (issue 9, defect 1).

Gradio serves every file under each of its ``allowed_paths`` (recursively); passing it the
folder of each image used to expose the catalog's ``users.csv``, the interaction log, dotfiles
and sub-folders. `Thumbnails.root` is the only folder the app allows; it is filled on demand.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

log = logging.getLogger("recagent.ui")

# Cards show images 210 px high (app.py); 420 px keeps them sharp on high-density screens.
THUMB_SIZE = (420, 420)


class Thumbnails:
    """Thumbnails of item images in one folder that holds only them.

    Args:
        root: the folder (created if missing), e.g. ``layout(cfg, ds).cache / "thumbs"``; None = a
            fresh temporary folder.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="recagent-thumbs-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self._lock = threading.Lock()

    def get(self, source: str | None) -> str | None:
        """The thumbnail of image file ``source`` (made once; remade when the source changes),
        or None for no image or an image that cannot be read (the card is drawn text-only).

        Args:
            source: an absolute image path from the catalog (``Catalog.items.image_path``).
        """
        if not isinstance(source, str) or not source:
            return None
        src = Path(source)
        try:
            st = src.stat()
        except OSError:
            return None
        if not src.is_file():  # a FIFO or device would block or leak; only regular files
            return None
        key = hashlib.sha256(f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
        out = self.root / f"{key}.png"
        if out.is_file():
            return str(out)
        with self._lock:
            if out.is_file():
                return str(out)
            try:
                _write_thumbnail(src, out)
            except Exception as exc:  # an unreadable image costs its picture, never the reply
                log.warning("image %s: cannot make a thumbnail (%s); the card is shown without it", src, exc)
                return None
        return str(out)


def _write_thumbnail(src: Path, out: Path) -> None:
    from PIL import Image

    with Image.open(src) as im:
        im.thumbnail(THUMB_SIZE)
        im = im.convert("RGBA" if im.mode in ("RGBA", "LA", "P") else "RGB")
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as fh:
                im.save(fh, format="PNG")
            os.replace(tmp, out)  # atomic: a reader never sees half a file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
