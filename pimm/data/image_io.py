"""Image decoding: open a file as an RGB PIL image the way timm's dataset readers do."""
import errno
import os
import stat
import struct
from collections import deque
from typing import Deque, Optional, Tuple, Union

import numpy as np
from PIL import Image

__all__ = ['CorruptImageError', 'load_rgb', 'to_rgb', 'unreadable_reason']

PathLike = Union[str, os.PathLike]

# what PIL raises for undecodable or truncated data (UnidentifiedImageError is an OSError)
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error,
                  Image.DecompressionBombError)
_PROBLEM = ': corrupt or unreadable image'
# the last error paddle rebuilt from a worker process, for the loader to re-raise (see loader.py)
_worker_errors: Deque['CorruptImageError'] = deque(maxlen=1)


class CorruptImageError(Exception):
    """An image file cannot be read or decoded; the one-line message names the path."""

    def __init__(self, path: PathLike, reason: str = '') -> None:
        path = os.fspath(path)
        from_worker = '\n' in path and not reason
        if from_worker:
            # paddle's DataLoader rebuilds a worker's exception as ``CorruptImageError(traceback)``
            # in its reader thread: recover the worker's one-line message from the last line
            message = path.rstrip().rsplit('\n', 1)[-1].split(f'{type(self).__name__}: ', 1)[-1]
            path, _, reason = message.partition(_PROBLEM)
            reason = reason.strip()[1:-1]
        self.path = path
        self.reason = ' '.join(str(reason).split())  # keep the message on one line
        super().__init__(f'{path}{_PROBLEM}' + (f' ({self.reason})' if self.reason else ''))
        if from_worker:
            _worker_errors.append(self)

    def __reduce__(self):
        return type(self), (self.path, self.reason)


def take_worker_error() -> Optional[CorruptImageError]:
    """The last CorruptImageError paddle rebuilt from a loader worker (cleared on read), if any."""
    return _worker_errors.pop() if _worker_errors else None


def unreadable_reason(path: PathLike, error: OSError) -> str:
    """A short reason for the ``OSError`` raised when opening the image at ``path``."""
    if error.errno == errno.ELOOP:
        return 'symbolic link loop'
    if isinstance(error, FileNotFoundError) and os.path.islink(path):
        try:
            return f'dangling symbolic link to {os.readlink(path)}'
        except OSError:
            return 'dangling symbolic link'
    if isinstance(error, PermissionError):
        return 'permission denied'
    if isinstance(error, FileNotFoundError):
        return 'file not found (removed since the dataset was listed?)'
    return error.strerror or type(error).__name__


def _open_regular(path: str):
    # O_NONBLOCK: a FIFO (or a device) named like an image would block open() forever; it is
    # refused by its stat instead. The flag has no effect on reading a regular file.
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_BINARY', 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CorruptImageError(path, 'not a regular file')
        return os.fdopen(fd, 'rb')
    except BaseException:
        os.close(fd)
        raise


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB. Where timm's ``convert('RGB')`` clips (and a 16-bit grayscale PNG turns white),
    high-bit-depth pixels are scaled: 16-bit (``I;16*``, and ``I`` as PIL opens 16-bit PNGs) by 255/65535,
    float (``F``) from [0, 1] when it lies there. A palette with transparency goes through RGBA (the same
    colours, without PIL's warning); every other mode is ``convert('RGB')``."""
    if img.mode.startswith('I;16') or img.mode in ('I', 'F'):
        values = np.asarray(img, dtype=np.float64)
        if img.mode == 'F':
            scale = 255. if values.size and np.nanmax(values) <= 1. else 1.
        else:
            scale = 255. / 65535.
        gray = np.clip(np.rint(np.nan_to_num(values) * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([gray] * 3, axis=-1), 'RGB')
    if img.mode == 'P' and 'transparency' in img.info:
        img = img.convert('RGBA')
    return img.convert('RGB')


def load_rgb(path: PathLike, draft_size: Optional[Tuple[int, int]] = None) -> Image.Image:
    """Decode ``path`` into a fully loaded RGB image (``img.convert('RGB')``, as timm does).

    Grayscale, CMYK, palette and alpha images are converted by PIL's ``convert('RGB')``
    (alpha is dropped, not composited); 16-bit and float images are scaled to 8 bits
    (:func:`to_rgb`). A missing or unreadable file raises the usual
    ``FileNotFoundError``/``PermissionError`` (see :func:`unreadable_reason`); something
    that is not a regular file (a FIFO, a directory) or data that does not decode raises
    :class:`CorruptImageError`.

    ``draft_size=(w, h)`` is an *approximation* for speed: JPEGs are decoded with DCT-domain
    downscaling (PIL ``Image.draft``) by the largest factor in 1/2/4/8 that keeps both sides
    >= the requested size. The pixels differ from a full decode followed by resizing, so
    only use it when exact parity with timm is not required. Other formats ignore it.
    """
    path = os.fspath(path)
    with _open_regular(path) as f:  # file-system errors propagate unchanged
        try:
            img = Image.open(f)
            if draft_size is not None:  # a no-op for formats other than JPEG
                img.draft('RGB', (int(draft_size[0]), int(draft_size[1])))
            img.load()
            return img if img.mode == 'RGB' else to_rgb(img)
        except Image.UnidentifiedImageError:
            raise CorruptImageError(path, 'not a recognised image format') from None
        except _DECODE_ERRORS as e:
            raise CorruptImageError(path, f'{type(e).__name__}: {e}') from None
