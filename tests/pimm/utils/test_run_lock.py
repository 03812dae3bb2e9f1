"""The run folder's OS lock: one holder at a time, named in the refusal; it dies with its process (even a
SIGKILL), a launcher holds it for the ranks it starts, and an in-process run releases it when it ends."""
import os
import signal
import socket
import subprocess
import sys

import pytest

from pimm.utils.run_lock import HOLDER_ENV, LOCK_NAME, RunFolderBusyError, hold_run_folder, release_run_folders

HOLD = ('import sys, time; sys.path.insert(0, sys.argv[2]); from pimm.utils.run_lock import hold_run_folder; '
        'hold_run_folder(sys.argv[1]); print("held", flush=True); time.sleep(120)')
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture
def other_holder(tmp_path):
    """A separate process holding ``tmp_path``'s lock until killed."""
    proc = subprocess.Popen([sys.executable, '-c', HOLD, str(tmp_path), REPO], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'held'
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(autouse=True)
def released():
    yield
    release_run_folders()


def test_a_second_holder_is_refused_naming_the_folder_and_pid(tmp_path, other_holder):
    with pytest.raises(RunFolderBusyError) as refused:
        hold_run_folder(str(tmp_path))
    assert str(refused.value) == (f"'{tmp_path}' is in use by another run (pid {other_holder.pid} on "
                                  f"{socket.gethostname()}): wait for it to end, or give another MODEL or SAVE_PATH")


def test_the_lock_dies_with_a_killed_holder(tmp_path, other_holder):
    other_holder.send_signal(signal.SIGKILL)
    other_holder.wait()
    hold_run_folder(str(tmp_path))   # the stale lock file is no obstacle
    with open(tmp_path / LOCK_NAME) as f:
        assert f.read().split() == [str(os.getpid()), socket.gethostname()]


def test_the_launcher_named_in_the_environment_holds_it_for_its_ranks(tmp_path, other_holder, monkeypatch):
    monkeypatch.setenv(HOLDER_ENV, str(other_holder.pid))
    hold_run_folder(str(tmp_path))   # rank 0 of the launcher's run: no refusal
    monkeypatch.setenv(HOLDER_ENV, str(other_holder.pid + 1))
    with pytest.raises(RunFolderBusyError):
        hold_run_folder(str(tmp_path))


def test_released_locks_can_be_taken_by_another_process(tmp_path):
    hold_run_folder(str(tmp_path))
    hold_run_folder(str(tmp_path))   # again in the same process: still held, no refusal
    probe = [sys.executable, '-c', HOLD.replace('time.sleep(120)', 'pass'), str(tmp_path), REPO]
    blocked = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    assert blocked.returncode != 0 and 'RunFolderBusyError' in blocked.stderr and str(os.getpid()) in blocked.stderr
    release_run_folders()
    assert subprocess.run(probe, capture_output=True, text=True, timeout=60).stdout.strip() == 'held'


def test_a_folder_held_by_a_live_run_is_not_free_for_its_files(tmp_path, other_holder):
    """A resume's clean-up of temporary files must not run while another live run writes the folder (that
    run's temporary file is its checkpoint being saved: removing it made the writer fail and free the folder);
    once the holder is gone the folder is free, and the brief hold is given back."""
    from pimm.utils.run_lock import holding_if_free
    with holding_if_free(str(tmp_path)) as free:
        assert not free
    other_holder.send_signal(signal.SIGKILL)
    other_holder.wait()
    with holding_if_free(str(tmp_path)) as free:
        assert free
    probe = [sys.executable, '-c', HOLD.replace('time.sleep(120)', 'pass'), str(tmp_path), REPO]
    assert subprocess.run(probe, capture_output=True, text=True, timeout=60).stdout.strip() == 'held'


def test_a_folder_this_process_holds_is_free_for_its_files(tmp_path):
    from pimm.utils.run_lock import holding_if_free
    hold_run_folder(str(tmp_path))
    with holding_if_free(str(tmp_path)) as free:
        assert free
    # still held after the inside: it is the run's own lock, not the brief one
    probe = [sys.executable, '-c', HOLD.replace('time.sleep(120)', 'pass'), str(tmp_path), REPO]
    assert 'in use by another run' in subprocess.run(probe, capture_output=True, text=True, timeout=60).stderr


def test_a_live_runs_temporary_files_are_not_removed_as_stale(tmp_path, other_holder):
    """A resume clears the temporary files a killed save left; those of a live run are its saves in progress."""
    from pimm.utils.atomic import remove_stale_temp_files
    saving = tmp_path / '.checkpoint-last.pdparams.abc.tmp'
    saving.write_bytes(b'half')
    assert remove_stale_temp_files(str(tmp_path)) == [] and saving.exists()
    other_holder.send_signal(signal.SIGKILL)
    other_holder.wait()
    assert remove_stale_temp_files(str(tmp_path)) == [str(saving)] and not saving.exists()


def test_a_folder_our_launcher_holds_is_free_for_its_files(tmp_path, other_holder, monkeypatch):
    """Rank 0 of a launched run cleans up under the launcher's lock; a stranger's lock stays a refusal."""
    from pimm.utils.run_lock import holding_if_free
    monkeypatch.setenv(HOLDER_ENV, str(other_holder.pid))
    with holding_if_free(str(tmp_path)) as free:
        assert free
    monkeypatch.setenv(HOLDER_ENV, str(other_holder.pid + 1))
    with holding_if_free(str(tmp_path)) as free:
        assert not free
