"""The Cream search space (docs/reference.md §1): choices, stage widths and strides, path checks."""
import json
from importlib import resources
from typing import Dict, List, Sequence

__all__ = ['CHOICES', 'STAGE_OUT_CHS', 'STAGE_STRIDES', 'NUM_SEARCHED_STAGES', 'SEARCH_SPACE_ID', 'Path', 'validate_path',
           'path_to_arch_def', 'published_models', 'data_text', 'DATA_DIR']

# choice index -> (depthwise kernel, expansion ratio)
CHOICES = ((3, 4), (3, 6), (5, 4), (5, 6), (7, 4), (7, 6))
STAGE_OUT_CHS = (24, 40, 80, 96, 192)
STAGE_STRIDES = (2, 2, 2, 1, 2)
NUM_SEARCHED_STAGES = len(STAGE_OUT_CHS)
STEM_BLOCK = 'ds_r1_k3_s1_e1_c16_se0.25'
LAST_BLOCK = 'cn_r1_k1_s1_c320_se0.25'
# what a latency table is valid for: a table measured for other blocks does not describe this space
SEARCH_SPACE_ID = 'cream:' + '|'.join([STEM_BLOCK, LAST_BLOCK, ','.join(f'k{k}e{e}' for k, e in CHOICES),
                                       ','.join(map(str, STAGE_OUT_CHS)), ','.join(map(str, STAGE_STRIDES))])
# the tables the package ships (Paddle_Cream/data: FLOPs table, published models, subImageNet lists), found
# through importlib.resources: in a checkout, an installed wheel or a zip alike (read them with data_text)
DATA_PACKAGE = 'Paddle_Cream.data'
DATA_DIR = str(resources.files(DATA_PACKAGE))   # the folder itself, when the package is on disk

Path = List[List[int]]


def validate_path(path: Sequence[Sequence[int]], max_layers: int = 0) -> Path:
    """``path`` as a list of 7 lists of ints, or ``ValueError`` saying what is wrong.

    Stages 0 and 6 must be ``[0]``; each searched stage needs at least one layer
    (at most ``max_layers`` when given) with choices in 0..5.
    """
    if isinstance(path, (str, bytes)) or not isinstance(path, Sequence) or len(path) != NUM_SEARCHED_STAGES + 2:
        raise ValueError(f'a path is a list of {NUM_SEARCHED_STAGES + 2} lists of choice indices, got {path!r}')
    clean: Path = []
    for i, stage in enumerate(path):
        if isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence):
            raise ValueError(f'stage {i} of the path must be a list of choice indices, got {stage!r}')
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in stage):
            raise ValueError(f'stage {i} of the path must hold integers, got {list(stage)!r}')
        if i in (0, NUM_SEARCHED_STAGES + 1):
            if list(stage) != [0]:
                raise ValueError(f'stage {i} is fixed and must be [0], got {list(stage)!r}')
        else:
            if not stage:
                raise ValueError(f'stage {i} of the path has no layers')
            if max_layers and len(stage) > max_layers:
                raise ValueError(f'stage {i} has {len(stage)} layers, the search space allows {max_layers}')
            bad = [c for c in stage if not 0 <= c < len(CHOICES)]
            if bad:
                raise ValueError(f'stage {i} has choice {bad[0]}, valid choices are 0..{len(CHOICES) - 1}')
        clean.append(list(stage))
    return clean


def path_to_arch_def(path: Sequence[Sequence[int]]) -> List[List[str]]:
    """Block strings (timm grammar) for a path: the child network's exact layer list."""
    path = validate_path(path)
    arch_def = [[STEM_BLOCK]]
    for stage_idx, stage in enumerate(path[1:-1]):
        blocks = []
        for layer_idx, choice in enumerate(stage):
            kernel, exp = CHOICES[choice]
            stride = STAGE_STRIDES[stage_idx] if layer_idx == 0 else 1
            blocks.append(f'ir_r1_k{kernel}_s{stride}_e{exp}_c{STAGE_OUT_CHS[stage_idx]}_se0.25')
        arch_def.append(blocks)
    arch_def.append([LAST_BLOCK])
    return arch_def


def published_models() -> Dict[str, dict]:
    """The six published models keyed by name ('14', '43', ...): path, input size, params, MACs, paper top-1/5."""
    return json.loads(data_text('cream_published_models.json'))['models']


def data_text(name: str) -> str:
    """The text of the data file ``name`` the package ships (Paddle_Cream/data/``name``)."""
    return resources.files(DATA_PACKAGE).joinpath(name).read_text(encoding='utf-8')
