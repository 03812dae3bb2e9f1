"""Every configuration key in one place (the official key names): its default and what it accepts.

A YAML file or a ``KEY VALUE`` override may only set keys declared in :data:`SCHEMA`; each value is
converted and checked against its declaration (the kinds are in ``declare.py``) when it is set.
:data:`DEFAULTS` is the plain tree of the defaults. Checks that involve several keys, or the data,
the checkpoint or the machine, stay with the mode that needs them (``Paddle_Cream/engine``).
"""
import copy
from typing import Any, Dict, Mapping, Optional

from pimm.data.auto_augment import rand_augment_transform
from pimm.data.transforms import INTERPOLATION_NAMES
from pimm.inference import INFERENCE_CHOICES, TENSORRT_CHOICES
from pimm.optim import list_optimizers
from pimm.scheduler.scheduler_factory import SCHEDULERS

from ..data.demo_dataset import DEMO_DATASETS
from ..models.search_space import CHOICES, NUM_SEARCHED_STAGES, published_models
from ..search.behaviour import FOLLOW_CHOICES, SWITCHES
from ..search.sampler import HOW_TO_PROB
from .declare import Bool, Choice, Float, Int, ListOf, Maybe, Text, fixed, name, path

__all__ = ['SCHEMA', 'DEFAULTS', 'MAX_IMAGE_SIZE', 'MAX_STAGE_LAYERS', 'defaults_of', 'declaration', 'lookup']

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 2048   # px; beyond 2048 a batch no longer fits any memory
MAX_BATCH = 8192                            # images per process and batch
MAX_CLASSES = 100_000
MAX_STAGE_LAYERS = 8                        # the largest published model (604) has 6 in a stage
MAX_SEED = 2 ** 31 - 1                      # numpy seeds must be < 2**32; the epoch seeds are taken mod 2**31
MAX_PROCESSES = 64                          # NUM_GPU: processes on this node
MAX_WORKERS = 128                           # loader processes per training process
EVAL_METRICS = ('prec1', 'prec5', 'loss')   # the keys of engine.retrain_setup.EVAL_METRICS
EXPORT_FORMATS = ('paddle', 'onnx', 'both')
GLOBAL_POOLS = ('avg', 'max', 'avgmax', 'catavgmax')   # pimm's pool types but '' (the Cream head needs a vector)
RE_MODES = ('const', 'rand', 'pixel')       # pimm.data.random_erasing
OPTIMIZERS = tuple(list_optimizers())
LATENCY_RUNTIMES = ('paddle', 'onnxruntime', 'openvino')   # exported runtimes a latency table can be measured with
SELECTIONS = (-1,) + tuple(int(k) for k in published_models())
BOTH = ('train', 'retrain')   # keys fixed by the checkpoints of both training modes (declare.fixed)


def _rand_augment(text: str) -> None:
    rand_augment_transform(text)   # ValueError saying what is wrong with the string


def _count(default: int, lo: int = 1, hi: Optional[int] = None) -> Int:
    return Int(default, lo, hi)


def _prob(default: float) -> Float:
    return Float(default, 0.0, 1.0)


def _rate(default: float) -> Float:
    """A drop or smoothing rate: [0, 1), 1 would drop or smooth everything."""
    return Float(default, 0.0, 1.0, max_open=True)


def _positive(default: float) -> Float:
    return Float(default, 0.0, min_open=True)


def _non_negative(default: float) -> Float:
    return Float(default, 0.0)


_STAGE = ListOf([0], Int(0, 0, len(CHOICES) - 1), 1, MAX_STAGE_LAYERS,
                what=f'a list of 1 to {MAX_STAGE_LAYERS} choices in 0..{len(CHOICES) - 1}')
_PATH_WHAT = (f'a list of {NUM_SEARCHED_STAGES + 2} stages, each a list of 1 to {MAX_STAGE_LAYERS} '
              f'choice indices in 0..{len(CHOICES) - 1}')
_FRACTIONS = ListOf([], Float(0.0, 0.0), 1, 2, what='a list of 1 or 2 ascending numbers >= 0',
                    rule=(lambda v: v == sorted(v), 'the off point after the on point'))

SCHEMA: Dict[str, Any] = {
    'AUTO_RESUME': Bool(False),
    'DATA_DIR': path('./data/imagenet', empty=False),
    'MODEL': name('cream'),                    # the run folder is SAVE_PATH/<MMDD>-<MODEL>
    'RESUME_PATH': path(''),
    'SAVE_PATH': path('./output', empty=False),
    'SEED': fixed(Int(42, 0, MAX_SEED), *BOTH),   # fixed on resume: a resumed run repeats the uninterrupted one
    'LOG_INTERVAL': _count(50, 0),             # iterations between log lines; 0: none
    'RECOVERY_INTERVAL': _count(0, 0),         # official key; only 0 is supported (the engine says why)
    'WORKERS': _count(4, 0, MAX_WORKERS),      # 0: load in the training process
    'NUM_GPU': _count(1, 1, MAX_PROCESSES),    # processes; > 1 runs under paddle.distributed.launch
    'AMP': Bool(False),
    'ACC_GAP': _count(5, 0),                   # board: top-1 points a new path must beat
    'EVAL_METRICS': Choice('prec1', EVAL_METRICS, ignore_case=True),
    'SKIP_CORRUPT': Bool(False),               # count and skip unreadable images instead of stopping
    'FAST_DECODE': Bool(False),                # PIL draft() JPEG decoding: faster, not bit-equal (opt-in)
    'INPUT': path(''),                         # predict: an image, or a folder searched recursively for images
    'INFERENCE': Choice('auto', INFERENCE_CHOICES),   # test, predict, evolve/rank scoring (pimm.inference)
    'DATASET': {
        'DEMO': Choice('', ('',) + DEMO_DATASETS),   # 'digits': write scikit-learn's digits to DATA_DIR
        'NUM_CLASSES': fixed(_count(1000, 1, MAX_CLASSES), *BOTH),
        'IMAGE_SIZE': fixed(Int(0, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, also=((0, "the model's own size"),)), *BOTH),
        'INTERPOLATION': Choice('bicubic', INTERPOLATION_NAMES),
        'CROP_PCT': Float(0.875, 0.0, 1.0, min_open=True),
        'BATCH_SIZE': _count(128, 1, MAX_BATCH),    # per process
        'VAL_BATCH_MUL': _count(1, 1, 64),          # validation batch = BATCH_SIZE x this
        'PIN_MEM': Bool(True),
        'TRAIN_SPLIT': name('train'),               # DATA_DIR/<split>/<class>/<image>
        'VAL_SPLIT': name('val'),
    },
    'NET': {
        'SELECTION': fixed(Choice(14, SELECTIONS), 'retrain'),   # a published model, or -1: ARCH_FILE / INPUT_ARCH
        'INPUT_ARCH': ListOf([[0], [3], [3, 3], [3, 1, 3], [3, 3, 3, 3], [3, 3, 3], [0]], _STAGE,
                             NUM_SEARCHED_STAGES + 2, NUM_SEARCHED_STAGES + 2, what=_PATH_WHAT),
        'ARCH_FILE': path(''),                      # a best_arch.json of train or evolve, or a retrain's arch.json
        'PRETRAINED': path(''),                     # retrain: start from these weights (fine-tuning; the
                                                    # classifier is new when NUM_CLASSES differs)
        'GP': fixed(Choice('avg', GLOBAL_POOLS), *BOTH),
        'DROPOUT_RATE': _rate(0.0),
        'DROP_PATH_RATE': _rate(0.0),
        'EMA': {
            'USE': fixed(Bool(True), *BOTH),
            'FORCE_CPU': Bool(False),
            'DECAY': _prob(0.9998),
        },
    },
    'OPT': fixed(Choice('sgd', OPTIMIZERS, ignore_case=True), *BOTH),   # its state is the checkpoint's
    'OPT_EPS': _positive(1e-2),
    'MOMENTUM': Float(0.9, 0.0, 1.0, max_open=True),
    'WEIGHT_DECAY': _non_negative(1e-4),
    'OPTIMIZER': {                                  # official keys, not read (OPT, MOMENTUM, WEIGHT_DECAY are)
        'NAME': Choice('sgd', OPTIMIZERS, ignore_case=True),
        'MOMENTUM': Float(0.9, 0.0, 1.0, max_open=True),
        'WEIGHT_DECAY': _non_negative(1e-4),
    },
    'CLIP_GRAD': _non_negative(0.0),                # gradient norm clip; 0: none
    'SCHED': Choice('step', SCHEDULERS, ignore_case=True),
    'SCHED_ON_UPDATES': Bool(False),    # retrain: step the LR schedule after every update instead of every epoch
    'CHECKPOINT_HIST': _count(10),      # retrain: keep the best this-many epoch checkpoints (timm's checkpoint_hist)
    'LR_NOISE': Maybe((_non_negative(0.0), _FRACTIONS)),   # fractions of the schedule with LR noise
    'LR_NOISE_PCT': Float(0.67, 0.0, 1.0, min_open=True),  # noise is re-drawn until |noise| < this
    'LR_NOISE_STD': _non_negative(1.0),
    'WARMUP_LR': _non_negative(1e-4),
    'MIN_LR': _non_negative(1e-5),
    'EPOCHS': _count(200),
    'START_EPOCH': Maybe((_count(0, 0),)),         # retrain: start at this epoch (None: 0 or the resumed one)
    'DECAY_EPOCHS': _positive(30.0),
    'WARMUP_EPOCHS': _count(3, 0),
    'COOLDOWN_EPOCHS': _count(10, 0),
    'PATIENCE_EPOCHS': _count(10, 0),
    'DECAY_RATE': Float(0.1, 0.0, 1.0, min_open=True),
    'LR': _positive(1e-2),
    'META_LR': _positive(1e-4),
    'AUGMENTATION': {
        'AA': Text('rand-m9-mstd0.5', what="'' (none) or a RandAugment string such as rand-m9-mstd0.5",
                   max_len=200, check=_rand_augment),
        'COLOR_JITTER': _non_negative(0.4),
        'RE_PROB': _prob(0.2),
        'RE_MODE': Choice('pixel', RE_MODES, ignore_case=True),
        'RE_COUNT': _count(1, 1, 100),
        'MIXUP': _non_negative(0.0),                # Beta(alpha, alpha); 0: off
        'CUTMIX': _non_negative(0.0),
        'MIXUP_OFF_EPOCH': _count(0, 0),            # 0: never off
        'SMOOTHING': _rate(0.1),
        'TRAIN_INTERPOLATION': Choice('random', ('random',) + INTERPOLATION_NAMES),
        'SCALE': ListOf([0.08, 1.0], Float(1.0, 0.0, 1.0, min_open=True), 2, 2,   # RandomResizedCrop area range
                        what='a list of 2 numbers [min, max] with 0 < min <= max <= 1',
                        rule=(lambda v: v[0] <= v[1], 'min <= max')),
        'HFLIP': _prob(0.5),
    },
    'BATCHNORM': {                      # official keys; the engine refuses all but the PyTorch defaults
        'SYNC_BN': Bool(False),
        'BN_TF': Bool(False),
        'BN_MOMENTUM': _prob(0.1),
        'BN_EPS': _positive(1e-5),
    },
    'SUPERNET': {
        'METHOD': fixed(Choice('cream', ('cream', 'spos')), 'train'),
        'UPDATE_ITER': _count(200),
        'SLICE': fixed(_count(4), 'train'),             # the board's stored soft labels have this size
        'POOL_SIZE': fixed(_count(10), 'train'),
        'RESUNIT': Bool(False),         # official keys the engine refuses when True / False
        'DIL_CONV': Bool(False),
        'UPDATE_2ND': Bool(True),
        'FLOPS_MAXIMUM': fixed(_count(600, 0), 'train'),   # MFLOPs; 0 with a LATENCY_TABLE: no FLOPs budget
        'FLOPS_MINIMUM': fixed(_count(0, 0), 'train'),
        'LATENCY_TABLE': path(''),          # a latency_table.json (tools/main.py latency) for the hypernetwork
                                            # the FLOPs budget gives (FLOPS_MAXIMUM 0: the table gives it); '' none
        'LATENCY_MAXIMUM': fixed(_non_negative(0.0), 'train'),   # ms predicted by LATENCY_TABLE; 0: no budget
        'LATENCY_MINIMUM': fixed(_non_negative(0.0), 'train'),
        'PICK_METHOD': fixed(Choice('meta', ('meta', 'top1')), 'train'),
        'META_STA_EPOCH': _count(20, 0),
        'HOW_TO_PROB': fixed(Choice('pre_prob', HOW_TO_PROB), 'train'),
        # SUPERNET.FOLLOW and its switches: the corrected algorithm or the official code's (docs/search.md, "Where this
        # port deliberately differs"); each switch 'auto' follows FOLLOW
        'FOLLOW': fixed(Choice('corrected', FOLLOW_CHOICES), 'train'),
        **{key: fixed(Choice('auto', ('auto', corrected, official)), 'train')
           for key, (corrected, official, _) in SWITCHES.items()},
        'PRE_PROB': fixed(ListOf([0.05, 0.2, 0.05, 0.5, 0.05, 0.15], _non_negative(0.0), len(CHOICES), len(CHOICES),
                           what=f'a list of {len(CHOICES)} numbers >= 0 (one per choice) with a positive sum',
                           rule=(lambda v: sum(v) > 0, 'a positive sum')), 'train'),
    },
    'EVOLVE': {                   # tools/main.py evolve: SPOS evolutionary search on a search checkpoint
        'POPULATION': _count(50),         # candidates of the first generation (random paths within the limit)
        'TOP_K': _count(10),              # parents: the best this-many paths ever evaluated
        'MUTATION_PROB': _prob(0.1),      # each searched layer of a mutation child re-drawn with this probability
        'MUTATION_NUM': _count(25, 0),    # mutation children per generation
        'CROSSOVER_NUM': _count(25, 0),   # crossover children per generation (layer-wise from two parents)
        'GENERATIONS': _count(20),
        'BN_BATCHES': _count(200),        # training batches (of DATASET.BATCH_SIZE) recomputing BN statistics
        'EVAL_BATCHES': _count(40),       # validation batches scoring each candidate (the whole set when smaller)
        'EVAL_BATCH_SIZE': _count(200, 1, MAX_BATCH),   # images per scoring batch (docs/reference.md §9)
        'FLOPS_LIMIT': Maybe((_positive(600.0),)),     # MFLOPs; None: SUPERNET.FLOPS_MAXIMUM
        'LATENCY_LIMIT': _non_negative(0.0),   # ms predicted by LATENCY_TABLE; 0: none
        'LATENCY_TABLE': path(''),             # '' : SUPERNET.LATENCY_TABLE of this config
    },
    'EXPORT': {                   # tools/main.py export: Paddle Inference and ONNX files of a network
        'FORMAT': Choice('both', EXPORT_FORMATS),
        'OPSET': _count(13, 7, 19),       # ONNX opset (paddle2onnx supports 7..19)
        'LATENCY_TABLE': path(''),        # measure the exported network with this table's settings; '' none
    },
    'LATENCY': {                  # tools/main.py latency: a latency table of the hypernetwork the budget gives
        'RUNTIME': Choice('auto', ('auto',) + LATENCY_RUNTIMES),   # auto: the one INFERENCE auto would serve with
        'THREADS': _count(1, 0, 1024),    # math threads of the runtime; 0: every core
        'BATCH_SIZE': _count(1, 1, MAX_BATCH),
        'GPU': Bool(False),               # Paddle Inference on GPU 0 (a CUDA build of Paddle)
        'TENSORRT': Choice('off', TENSORRT_CHOICES),   # with GPU: TensorRT engines at this precision
        'VALIDATE': _count(50, 0, 10_000),    # random paths measured whole to prove the table (0: none)
        'CALIBRATE': _count(10, 0, 10_000),   # random paths (plus the smallest and largest) the correction is fitted on
        'WARMUP': _count(10, 0, 100_000),     # untimed calls of each part and network
        'REPEATS': _count(20, 1, 100_000),    # timed calls of each per round
        'ROUNDS': _count(7, 1, 1000),         # interleaved rounds; the median of the round medians is kept
        'PIN': Bool(True),                # pin the process to THREADS cores while timing
        'OUTPUT': path(''),               # a copy of the run folder's latency_table.json here; '' none
    },
    'PREDICT': {                  # tools/main.py predict
        'TOPK': _count(5, 1, 1000),       # classes listed per image
    },
    'RANK': {                     # tools/main.py rank: inherited vs retrained top-1 rank correlation
        'NUM_PATHS': _count(30, 2),       # random paths within the budget
        'RETRAIN_EPOCHS': Maybe((_count(1),)),   # None: EPOCHS; each path retrained from scratch
    },
}


def defaults_of(schema: Dict[str, Any]) -> Dict[str, Any]:
    """The tree of defaults of a (nested) schema, as fresh objects."""
    return {k: defaults_of(v) if isinstance(v, dict) else copy.deepcopy(v.default) for k, v in schema.items()}


DEFAULTS = defaults_of(SCHEMA)


def lookup(tree: Mapping[str, Any], dotted: str, missing: Any = None) -> Any:
    """The value at a dotted key (``NET.EMA.USE``) of a nested mapping, ``missing`` where there is none."""
    node: Any = tree
    for part in dotted.split('.'):
        if not isinstance(node, Mapping) or part not in node:
            return missing
        node = node[part]
    return node


def declaration(dotted: str) -> Any:
    """The :class:`~.declare.Decl` of a dotted key, a dict for a group, None for an unknown key."""
    return lookup(SCHEMA, dotted)
