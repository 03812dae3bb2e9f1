"""Pieces shared by the train, retrain and test loops."""
from .errors import UserError
