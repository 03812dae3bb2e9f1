"""What a module's tqdm bars showed: the postfixes set and the one each bar's last display carried."""
from typing import Dict, List

from tqdm import tqdm


def _parse(postfix: str) -> Dict[str, str]:
    """tqdm's postfix text ``'top1=50.00, loss=0.6931'`` back into its fields."""
    return dict(part.split('=', 1) for part in (postfix or '').split(', ') if '=' in part)


def spy_on_bars(monkeypatch, module) -> List[Dict]:
    """Replace ``module.tqdm`` by a recording tqdm; the list returned gets one entry a bar:
    ``{'postfixes': [fields set, in order], 'closed_with': fields of the last display, None while open}``."""
    bars: List[Dict] = []

    class Recording(tqdm):
        def __init__(self, *args, **kwargs):
            self.record = {'postfixes': [], 'closed_with': None}
            bars.append(self.record)
            super().__init__(*args, **kwargs)

        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            super().set_postfix(ordered_dict, refresh, **kwargs)
            self.record['postfixes'].append(_parse(self.postfix))

        def close(self):
            if self.record['closed_with'] is None:
                self.record['closed_with'] = _parse(self.postfix)
            super().close()

    monkeypatch.setattr(module, 'tqdm', Recording)
    return bars
