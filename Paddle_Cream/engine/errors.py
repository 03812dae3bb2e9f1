"""The errors a user can fix: tools print their message as one line and exit non-zero."""
import errno
import math
import os
from typing import Optional

__all__ = ['UserError', 'os_error_line', 'require_file', 'check_finite_loss', 'require_inference', 'MIN_LOSS_SCALE']

# errors of the user's files and disks, as opposed to a programming error that wants its traceback
_USER_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOTDIR,
                errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.EIO, errno.EFBIG, errno.EMFILE,
                errno.ENFILE, errno.ENOTEMPTY, errno.EXDEV, errno.EBUSY, errno.ETXTBSY}


class UserError(Exception):
    """Bad input (config, data, checkpoint) described in one line."""


def os_error_line(error: OSError) -> Optional[str]:
    """``"<path>: <reason>"`` for an ``OSError`` about the user's files or disk (None for another kind)."""
    if error.errno not in _USER_ERRNOS and error.filename is None:
        return None
    reason = error.strerror or str(error)
    paths = [p for p in (error.filename, getattr(error, 'filename2', None)) if p is not None]
    where = ' -> '.join(str(p) for p in paths)
    return f'{where}: {reason}' if where else reason


def require_file(path: str, key: str) -> None:
    """``path`` (the value of config key ``key``) is an existing file: one UserError line saying what it is
    otherwise ("is a directory" is not "not found")."""
    if os.path.isdir(path):
        raise UserError(f"{key} '{path}' is a directory: give the file itself")
    if not os.path.isfile(path):
        raise UserError(f"{key} '{path}' not found")


MIN_LOSS_SCALE = 1.0   # under AMP, a non-finite loss stops the run once the loss scale is down to this floor


def check_finite_loss(loss: float, epoch: int, iteration: int, checkpoint: str, scaler=None) -> bool:
    """True for a finite training loss. A NaN or infinite one (a too-high LR, broken data) stops the run:
    nothing after it is saved, so ``checkpoint``, the last epoch's, stays the last good one. Under AMP
    (``scaler``, a :class:`pimm.utils.amp.GradScaler`) it is a float16 overflow whose step the scaler skipped:
    False (leave it out of the means) while the scale is above its floor, :data:`MIN_LOSS_SCALE`, where
    lowering it no longer helps."""
    if math.isfinite(loss):
        return True
    if scaler is not None and float(scaler._scale.numpy().reshape(-1)[0]) > MIN_LOSS_SCALE:
        return False
    kept = f'the last good checkpoint is {checkpoint}' if os.path.isfile(checkpoint) else 'no checkpoint was written'
    raise UserError(f'epoch {epoch}, iteration {iteration}: the training loss is {loss}; stopped ({kept}): '
                    f'lower LR or check the data')


def require_inference(kind: str) -> None:
    """``INFERENCE kind`` is usable here: one UserError line naming the missing package otherwise."""
    from pimm.inference import RuntimeUnavailableError, check_inference
    try:
        check_inference(kind)
    except RuntimeUnavailableError as e:
        raise UserError(str(e)) from None
