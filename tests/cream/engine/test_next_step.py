"""The printed next command: run as printed, it loads a configuration holding every setting asked for, and it
names only the settings its config file does not already hold."""
import os
import shlex

import pytest

from Paddle_Cream.config import load_config
from Paddle_Cream.engine.next_step import REPO_ROOT, next_command, next_model


def loaded(command: str):
    """The configuration ``command`` loads, parsed by the shell's rules and the config system's own loader."""
    words = shlex.split(command)
    assert words[:2] == ['python', 'tools/main.py'], words
    return load_config(os.path.join(REPO_ROOT, words[3]), words[4:])


@pytest.mark.parametrize('mode,config,settings,printed', [
    ('retrain', 'configs/demo/retrain.yaml',
     [('NET.SELECTION', -1), ('NET.ARCH_FILE', './output/1207-demo_search/best_arch.json'),
      ('DATA_DIR', 'data/digits'), ('DATASET.NUM_CLASSES', 10), ('MODEL', 'demo_retrain')],
     'python tools/main.py retrain configs/demo/retrain.yaml NET.ARCH_FILE ./output/1207-demo_search/best_arch.json'),
    ('test', 'configs/demo/test.yaml',
     [('NET.ARCH_FILE', '/runs/my run/arch.json'), ('DATASET.CROP_PCT', 0.875), ('DATASET.IMAGE_SIZE', 32)],
     "python tools/main.py test configs/demo/test.yaml NET.ARCH_FILE '/runs/my run/arch.json' DATASET.CROP_PCT 0.875"),
    ('evolve', 'configs/demo/evolve.yaml',
     [('RESUME_PATH', 'c.pdparams'), ('SUPERNET.FLOPS_MINIMUM', 100.0), ('SUPERNET.FLOPS_MAXIMUM', 150)],
     'python tools/main.py evolve configs/demo/evolve.yaml RESUME_PATH c.pdparams SUPERNET.FLOPS_MAXIMUM 150'),
])
def test_only_the_settings_the_config_lacks_are_printed_and_the_command_loads_them_all(mode, config, settings,
                                                                                         printed):
    command = next_command(mode, config, settings)
    assert command == printed
    cfg = loaded(command)
    for key, value in settings:
        held = cfg.get(key)
        assert (os.path.normpath(held) == os.path.normpath(value) if isinstance(value, str) else held == value), key


def test_a_config_file_that_is_not_in_the_checkout_gets_every_setting():
    command = next_command('test', 'configs/no_such.yaml', [('DATA_DIR', './data/digits'), ('NET.SELECTION', -1)])
    assert command == 'python tools/main.py test configs/no_such.yaml DATA_DIR ./data/digits NET.SELECTION -1'


@pytest.mark.parametrize('model,mode,expected', [
    ('demo_search', 'retrain', 'demo_retrain'), ('demo_retrain', 'export', 'demo_export'),
    ('demo_spos', 'evolve', 'demo_spos_evolve'), ('demo_spos_evolve', 'retrain', 'demo_spos_retrain'),
    ('cream', 'retrain', 'cream_retrain'), ('_search', 'retrain', '_search_retrain'),
])
def test_the_next_run_gets_its_own_folder_name(model, mode, expected):
    assert next_model(model, mode) == expected
