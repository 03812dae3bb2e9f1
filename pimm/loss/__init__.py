"""pimm.loss: training losses."""
from .cross_entropy import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
