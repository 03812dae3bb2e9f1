"""pimm.scheduler: timm's learning-rate schedulers (epoch- or update-based) for Paddle optimizers."""
from .cosine_lr import CosineLRScheduler
from .linear_lr import LinearLRScheduler
from .scheduler import Scheduler, TorchCpuGenerator
from .scheduler_factory import create_scheduler
from .step_lr import StepLRScheduler
