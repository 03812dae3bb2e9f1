"""The user-mistake tables' shared data: built once per test module."""
import pytest

from bad_input import table_data


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """The small digits folder, a search checkpoint of it and a retrained network's checkpoint."""
    return table_data(tmp_path_factory.mktemp('table'))
