"""The error a user can fix: tools print its message as one line and exit non-zero."""

__all__ = ['UserError']


class UserError(Exception):
    """Bad input (config, data, checkpoint) described in one line."""
