"""Every configuration key with its default and type, in one place (the official key names).

A YAML file or a ``KEY VALUE`` override may only set keys that exist here; the
value is converted to the default's type. ``None`` defaults accept any value.
"""

DEFAULTS = {
    'AUTO_RESUME': False,
    'DATA_DIR': './data/imagenet',
    'MODEL': 'cream',
    'RESUME_PATH': '',
    'SAVE_PATH': './output',
    'SEED': 42,
    'LOG_INTERVAL': 50,
    'RECOVERY_INTERVAL': 0,
    'WORKERS': 4,
    'NUM_GPU': 1,
    'AMP': False,
    'ACC_GAP': 5,
    'EVAL_METRICS': 'prec1',
    'SKIP_CORRUPT': False,        # count and skip unreadable images instead of stopping
    'FAST_DECODE': False,         # PIL draft() JPEG decoding: faster, not bit-equal (opt-in)
    'INFERENCE': 'auto',          # test mode: 'dygraph', 'predictor' (paddle.inference + oneDNN) or 'auto'
    'DATASET': {
        'DEMO': '',               # 'digits': write scikit-learn's digits to DATA_DIR on first use
        'NUM_CLASSES': 1000,
        'IMAGE_SIZE': 0,          # 0: the model's own input size
        'INTERPOLATION': 'bicubic',
        'CROP_PCT': 0.875,
        'BATCH_SIZE': 128,
        'VAL_BATCH_MUL': 1,
        'PIN_MEM': True,
        'TRAIN_SPLIT': 'train',
        'VAL_SPLIT': 'val',
    },
    'NET': {
        'SELECTION': 14,
        'INPUT_ARCH': [[0], [3], [3, 3], [3, 1, 3], [3, 3, 3, 3], [3, 3, 3], [0]],
        'ARCH_FILE': '',
        'GP': 'avg',
        'DROPOUT_RATE': 0.0,
        'DROP_PATH_RATE': 0.0,
        'EMA': {
            'USE': True,
            'FORCE_CPU': False,
            'DECAY': 0.9998,
        },
    },
    'OPT': 'sgd',
    'OPT_EPS': 1e-2,
    'MOMENTUM': 0.9,
    'WEIGHT_DECAY': 1e-4,
    'OPTIMIZER': {
        'NAME': 'sgd',
        'MOMENTUM': 0.9,
        'WEIGHT_DECAY': 1e-4,
    },
    'CLIP_GRAD': 0.0,
    'SCHED': 'step',
    'SCHED_ON_UPDATES': False,    # retrain: step the LR schedule after every update instead of every epoch
    'CHECKPOINT_HIST': 10,        # retrain: keep the best this-many epoch checkpoints (timm's checkpoint_hist)
    'LR_NOISE': None,
    'LR_NOISE_PCT': 0.67,
    'LR_NOISE_STD': 1.0,
    'WARMUP_LR': 1e-4,
    'MIN_LR': 1e-5,
    'EPOCHS': 200,
    'START_EPOCH': None,
    'DECAY_EPOCHS': 30.0,
    'WARMUP_EPOCHS': 3,
    'COOLDOWN_EPOCHS': 10,
    'PATIENCE_EPOCHS': 10,
    'DECAY_RATE': 0.1,
    'LR': 1e-2,
    'META_LR': 1e-4,
    'AUGMENTATION': {
        'AA': 'rand-m9-mstd0.5',
        'COLOR_JITTER': 0.4,
        'RE_PROB': 0.2,
        'RE_MODE': 'pixel',
        'RE_COUNT': 1,
        'MIXUP': 0.0,
        'CUTMIX': 0.0,
        'MIXUP_OFF_EPOCH': 0,
        'SMOOTHING': 0.1,
        'TRAIN_INTERPOLATION': 'random',
        'SCALE': [0.08, 1.0],     # RandomResizedCrop area range
        'HFLIP': 0.5,
    },
    'BATCHNORM': {
        'SYNC_BN': False,
        'BN_TF': False,
        'BN_MOMENTUM': 0.1,
        'BN_EPS': 1e-5,
    },
    'SUPERNET': {
        'METHOD': 'cream',
        'UPDATE_ITER': 200,
        'SLICE': 4,
        'POOL_SIZE': 10,
        'RESUNIT': False,
        'DIL_CONV': False,
        'UPDATE_2ND': True,
        'FLOPS_MAXIMUM': 600,
        'FLOPS_MINIMUM': 0,
        'PICK_METHOD': 'meta',
        'META_STA_EPOCH': 20,
        'HOW_TO_PROB': 'pre_prob',
        'PRE_PROB': [0.05, 0.2, 0.05, 0.5, 0.05, 0.15],
    },
    'EVOLVE': {                   # tools/main.py evolve: SPOS evolutionary search on a search checkpoint
        'POPULATION': 50,         # candidates of the first generation (random paths within the limit)
        'TOP_K': 10,              # parents: the best this-many paths ever evaluated
        'MUTATION_PROB': 0.1,     # each searched layer of a mutation child re-drawn with this probability
        'MUTATION_NUM': 25,       # mutation children per generation
        'CROSSOVER_NUM': 25,      # crossover children per generation (layer-wise from two parents)
        'GENERATIONS': 20,
        'BN_BATCHES': 200,        # training batches (of DATASET.BATCH_SIZE) recomputing BN statistics per candidate
        'EVAL_BATCHES': 40,       # validation batches scoring each candidate (the whole set when smaller)
        'EVAL_BATCH_SIZE': 200,   # images per scoring batch (SPEC 9: 40 batches of 200)
        'FLOPS_LIMIT': None,      # MFLOPs; None: SUPERNET.FLOPS_MAXIMUM
    },
    'RANK': {                     # tools/main.py rank: inherited vs retrained top-1 rank correlation
        'NUM_PATHS': 30,          # random paths within the budget
        'RETRAIN_EPOCHS': None,   # None: EPOCHS; each path retrained from scratch with the retrain recipe
    },
}
