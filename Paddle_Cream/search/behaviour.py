"""Which algorithm the search runs where this port deliberately differs from the official Cream code.

``SUPERNET.FOLLOW corrected`` (the default) runs the corrected algorithm; ``official`` switches every
difference listed in :data:`SWITCHES` to what the official PyTorch code does, so a run can reproduce the
paper's numbers. Each difference also has its own key (``auto``: as ``FOLLOW`` says), so one correction
can be measured alone.
"""
from dataclasses import asdict, dataclass, fields
from typing import Dict, Optional, Tuple

__all__ = ['SearchBehaviour', 'SWITCHES', 'FOLLOW_CHOICES', 'resolve_behaviour']

FOLLOW_CHOICES = ('corrected', 'official')

# config key -> (corrected value, official value, what the official code does)
SWITCHES: Dict[str, Tuple[str, str, str]] = {
    'MATCH_WEIGHT': ('teacher', 'last_entry',
                     "m is the LAST board entry's matching score, not the chosen teacher's"),
    'OFF_PATH': ('untouched', 'momentum',
                 'blocks of earlier paths keep moving every step (momentum and weight decay on zero gradients)'),
    'PICK_BN': ('per_slice', 'running',
                "teacher selection forwards each stored slice alone and moves BatchNorm's running statistics"),
    'META_SCHEDULE': ('global', 'per_epoch',
                      'the meta update fires at batch_idx % UPDATE_ITER == 0, batch_idx > 0, counted per epoch'),
    'LR_RULE': ('linear', 'squared',
                'the learning rate is LR * (LR - t / T): LR squared at the start (the same as linear at LR 1)'),
    'M_GRADIENT': ('none', 'trained',
                   'the main loss trains the meta layer and the student through m'),
    'META_STEP': ('simulated', 'official',
                  "the meta update simulates plain SGD at the meta layer's learning rate, then the student takes a "
                  'real clipped step with the main optimizer, kept'),
    'META_CHAIN': ('path', 'stem', 'the meta gradient runs through the first parameter (the stem convolution) only'),
    'META_CLIP': ('differentiated', 'ignored', "the simulated step is not clipped and the clip's Jacobian is left out"),
    'META_VAL_LOSS': ('ce', 'train', 'the meta update validates with the training loss (label smoothing)'),
    'META_BN': ('per_slice', 'running', "the meta update's forwards run in train mode and move the running statistics"),
    'META_OPTIMIZER': ('own', 'main',
                       "the meta layer is in the main optimizer's Nesterov group at META_LR, scheduled and stepped "
                       'with it every iteration'),
}


@dataclass(frozen=True)
class SearchBehaviour:
    """One value per difference (see :data:`SWITCHES`); the defaults are the corrected algorithm."""
    match_weight: str = 'teacher'
    off_path: str = 'untouched'
    pick_bn: str = 'per_slice'
    meta_schedule: str = 'global'
    lr_rule: str = 'linear'
    m_gradient: str = 'none'
    meta_step: str = 'simulated'
    meta_chain: str = 'path'
    meta_clip: str = 'differentiated'
    meta_val_loss: str = 'ce'
    meta_bn: str = 'per_slice'
    meta_optimizer: str = 'own'

    def as_dict(self) -> Dict[str, str]:
        """``{CONFIG_KEY: value}`` for logs and best_arch.json."""
        return {f.name.upper(): getattr(self, f.name) for f in fields(self)}

    def follows(self) -> str:
        """'corrected' or 'official' when every switch agrees with it, else 'mixed'."""
        for name, column in (('corrected', 0), ('official', 1)):
            if all(value == SWITCHES[key][column] for key, value in self.as_dict().items()):
                return name
        return 'mixed'

    def describe(self) -> str:
        """One log line: which behaviour runs and every switch's value."""
        values = ', '.join(f'{k} {v}' for k, v in self.as_dict().items())
        return f'search behaviour: {self.follows()} ({values})'


def resolve_behaviour(follow: str, overrides: Optional[Dict[str, str]] = None) -> SearchBehaviour:
    """The behaviour for ``SUPERNET.FOLLOW follow`` with the switch keys of ``overrides`` (``auto``: as
    ``follow`` says) applied."""
    if follow not in FOLLOW_CHOICES:
        raise ValueError(f'SUPERNET.FOLLOW must be one of {FOLLOW_CHOICES}, got {follow!r}')
    column = FOLLOW_CHOICES.index(follow)
    values = {}
    for key, (corrected, official, _) in SWITCHES.items():
        given = (overrides or {}).get(key, 'auto')
        if given not in ('auto', corrected, official):
            raise ValueError(f"SUPERNET.{key} must be one of auto, {corrected}, {official}, got {given!r}")
        values[key.lower()] = (corrected, official)[column] if given == 'auto' else given
    behaviour = SearchBehaviour(**values)
    if behaviour.m_gradient == 'trained' and behaviour.meta_optimizer != 'main':
        raise ValueError('SUPERNET.M_GRADIENT trained needs SUPERNET.META_OPTIMIZER main: the gradient the main loss '
                         'gives the meta layer is stepped by the main optimizer')
    assert set(asdict(behaviour)) == {k.lower() for k in SWITCHES}
    return behaviour
