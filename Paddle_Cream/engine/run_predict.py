"""``tools/main.py predict``: classify one image, or every image under a folder.

``INPUT`` is an image file or a folder searched recursively the way :class:`pimm.data.ImageDataset`
searches a class folder (pimm's image extensions in any case, hidden entries skipped, symlinked
folders followed, a symlink loop refused); the images are taken in the sorted order of their path
relative to ``INPUT``. The network and its weights come from ``NET.*`` and ``RESUME_PATH`` exactly as
for ``tools/main.py test``, and images go through the same evaluation transform (``DATASET.CROP_PCT``,
``DATASET.INTERPOLATION``, the model's input size, ImageNet mean/std) and runner (``INFERENCE``).

Class labels: the names a retrain checkpoint (``.pdparams``) stores in ``args['class_names']`` when
there are ``DATASET.NUM_CLASSES`` of them, else the ImageNet-1k names for a 1000-class network,
else the class index as a string.

Written in ``SAVE_PATH/<MMDD>-<MODEL>/`` (atomically, only once every input has been checked):

- ``predictions.json``: a list, one entry per readable image in the order above,
  ``{"path": "<INPUT>/sub/x.jpg", "topk": [{"index": 207, "label": "golden retriever", "prob": 0.53}, ...]}``
  with the ``PREDICT.TOPK`` most probable classes (softmax probabilities, rounded to 6 decimals),
  most probable first;
- ``predict.json``: the summary, written last: ``model``, ``arch``, ``input_size``, ``weights``,
  ``input``, ``labels`` ('checkpoint', 'imagenet' or 'index'), ``topk``, ``inference`` (the runtime
  that served), ``images`` (found),
  ``predicted``, ``skipped`` (unreadable or undecodable images, left out of predictions.json),
  ``unreadable`` (their paths), ``seconds``, ``images_per_sec``, ``accuracy`` (below);
- ``predict.log`` (the table of the first predictions, the skipped images, the accuracy, the final counts)
  and ``predict_config.yaml``.

Accuracy: when ``INPUT`` is a folder and an image's parent folder is named like one of the labels (an
ImageNet-style folder of class sub-folders named as the network's classes, e.g. the demo's
``digit_0..digit_9``) or, with the ImageNet labels, like a class's WordNet id (``n01440764``: the
usual ImageNet val layout), that image is scored against it; ``accuracy`` in predict.json is then
``{"top1", "top5" (percent), "images" (scored), "unscored" (predicted but in no folder named like a
class)}`` and the log says it in one line; null (and nothing in the log) when no image is scored.
"""
import math
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
from tqdm import tqdm

from pimm.data import IMAGE_EXTENSIONS, CorruptImageError, DatasetError, imagenet_synsets, load_rgb
from pimm.data.dataset import CORRUPT_TARGET, list_images
from pimm.data.image_io import unreadable_reason
from pimm.inference import create_runner, threads_beside_loader

from .errors import UserError, require_inference
from .evaluate import eval_loader
from .labels import class_labels
from .model_builder import build_model, load_weights, require_weights
from .output import create_output_dir, setup_logging, write_json_atomic

__all__ = ['find_images', 'top_k', 'check_predict_inputs', 'folder_accuracy', 'run_predict']

TABLE_ROWS = 10          # predictions shown in the log
TABLE_TOPK = 3           # classes per image in that table (predictions.json has PREDICT.TOPK)
MAX_SKIP_LINES = 10      # unreadable images named one per line; the rest are counted (all in predict.json)
_EXTENSIONS = ' '.join(IMAGE_EXTENSIONS)


def find_images(input_path: str) -> Tuple[List[str], List[str]]:
    """``(images, ignored)`` of ``INPUT``: the image itself, or every image under the folder (sorted by
    relative path), and the entries named like images that are not regular files (FIFOs...)."""
    if os.path.isdir(input_path):
        try:
            found, ignored = list_images(input_path)
        except DatasetError as e:  # a folder that cannot be listed, a symlink loop
            raise UserError(str(e)) from None
        if not found:
            raise UserError(f"INPUT '{input_path}': no images in the folder or its sub-folders "
                            f"(extensions: {_EXTENSIONS})")
        return found, ignored
    if not os.path.isfile(input_path):
        raise UserError(f"INPUT '{input_path}' is neither an image file nor a folder")
    if os.path.splitext(input_path)[1].lower() not in IMAGE_EXTENSIONS:
        raise UserError(f"INPUT '{input_path}' is not an image file (extensions: {_EXTENSIONS})")
    # one image named by the user: an unreadable one is an error, not a run that predicts nothing
    _check_readable(input_path)
    return [input_path], []


def _open_problem(path: str) -> Optional[str]:
    """None when ``path`` decodes, else the one-line reason it does not."""
    try:
        load_rgb(path)
    except CorruptImageError as e:
        return str(e)
    except OSError as e:  # permission denied, a dangling link: as unusable as undecodable data
        return str(CorruptImageError(path, unreadable_reason(path, e)))
    return None


def _check_readable(path: str) -> None:
    problem = _open_problem(path)
    if problem:
        raise UserError(problem)


def check_predict_inputs(cfg) -> Tuple[List[str], List[str]]:
    """Fail fast, before anything is built or written, on what a user can fix; returns
    :func:`find_images` of ``INPUT``."""
    if not cfg.INPUT:
        raise UserError('predict needs images: set INPUT to an image file or a folder of images')
    if not os.path.exists(cfg.INPUT):  # a dangling symlink too
        raise UserError(f"INPUT '{cfg.INPUT}' not found")
    require_weights(cfg, 'predict')
    require_inference(cfg.INFERENCE)
    if cfg.NUM_GPU > 1:
        raise UserError('predict runs in one process: set NUM_GPU 1')
    return find_images(cfg.INPUT)


def top_k(logits: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(indices, probabilities)`` [N, k] of the ``k`` most probable classes of each row (softmax in
    float64), most probable first; equal probabilities keep the lower index first."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    order = np.argsort(-probs, axis=1, kind='stable')[:, :k]
    return order, np.take_along_axis(probs, order, axis=1)


class _ImageFiles(paddle.io.Dataset):
    """``dataset[i]`` is ``(transform(image i), i)``, or ``(zeros, -1)`` when image i cannot be read
    or decoded: the position comes back with every batch, so a skipped image is the missing one."""

    def __init__(self, paths: Sequence[str]) -> None:
        super().__init__()
        self.paths = list(paths)
        self.transform = None       # create_loader sets the evaluation transform
        self.skip_corrupt = True    # the loader then zeroes the placeholders it normalises

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        index = int(index)  # the loader's SampleKey; the eval transform draws nothing random
        try:
            image = load_rgb(self.paths[index], draft_size=getattr(self.transform, 'draft_size', None))
        except (CorruptImageError, OSError):  # reported by the main process (workers' logs are not ours)
            return np.zeros(self.transform.output_shape, dtype=np.float32), CORRUPT_TARGET
        return self.transform(image), index


def _display_name(path: str, root: str, width: int = 36) -> str:
    name = os.path.relpath(path, root) if os.path.isdir(root) else os.path.basename(path)
    return name if len(name) <= width else '...' + name[-(width - 3):]


def _table(entries: List[Dict], root: str, total: int) -> List[str]:
    """The readable lines of the first predictions."""
    shown = entries[:TABLE_ROWS]
    k = min(TABLE_TOPK, len(shown[0]['topk'])) if shown else 0
    lines = [f'first {len(shown)} of {total} predictions (top-{k} of each):'] if shown else []
    for entry in shown:
        classes = ' | '.join(c['label'] + ('' if c['label'] == str(c['index']) else f" [{c['index']}]")
                             + f" {100 * c['prob']:.1f}%" for c in entry['topk'][:k])
        lines.append(f"  {_display_name(entry['path'], root):<36} {classes}")
    return lines


def _predict(runner, loader, labels: List[str], paths: List[str], k: int,
             show_progress: bool) -> Tuple[List[Dict], List[List[int]]]:
    """The predictions.json entries of the readable images, in ``paths`` order, and each one's 5 most
    probable class indices (for the accuracy, whatever ``k``)."""
    found: Dict[int, Tuple[Dict, List[int]]] = {}
    five = min(5, len(labels))
    for images, targets in tqdm(loader, total=len(loader), desc='predict', disable=not show_progress,
                                dynamic_ncols=True):
        logits = runner(images)
        logits = logits.numpy() if isinstance(logits, paddle.Tensor) else np.asarray(logits)
        positions = np.asarray(targets.numpy() if hasattr(targets, 'numpy') else targets).reshape(-1)
        keep = positions >= 0
        broken = keep & ~np.isfinite(logits).all(axis=1)
        if broken.any():   # a result that is not one: refused, nothing written
            raise UserError(f'{paths[int(positions[broken][0])]}: the network gives NaN or infinite logits '
                            f'({int(broken.sum())} image(s) of this batch); the weights or the INFERENCE runtime '
                            f'give no result, nothing written')
        indices, probs = top_k(logits[keep], max(k, five))
        for position, row_idx, row_prob in zip(positions[keep].tolist(), indices.tolist(), probs.tolist()):
            entry = {'path': paths[position], 'topk': [{'index': i, 'label': labels[i], 'prob': round(p, 6)}
                                                       for i, p in zip(row_idx[:k], row_prob[:k])]}
            found[position] = entry, row_idx[:five]
    ordered = [found[i] for i in sorted(found)]
    return [entry for entry, _ in ordered], [best for _, best in ordered]


def folder_accuracy(entries: Sequence[Dict], top5: Sequence[Sequence[int]], labels: Sequence[str],
                    folder_names: Sequence[str] = ()) -> Optional[Dict[str, float]]:
    """Top-1/top-5 (percent) of the entries whose image's parent folder is named like a class (its label, or
    its entry of ``folder_names``: ImageNet's WordNet ids), against that class (a name two classes share, as
    ImageNet's 'crane', accepts either); ``images`` scored and ``unscored``; None when no folder is named like
    a class."""
    classes: Dict[str, set] = {}
    for names in (labels, folder_names):
        for index, name in enumerate(names):
            classes.setdefault(name, set()).add(index)
    hit1 = hit5 = scored = 0
    for entry, best in zip(entries, top5):
        truth = classes.get(os.path.basename(os.path.dirname(entry['path'])))
        if truth is None:
            continue
        scored += 1
        hit1 += best[0] in truth
        hit5 += bool(truth.intersection(best))
    if not scored:
        return None
    return dict(top1=100. * hit1 / scored, top5=100. * hit5 / scored, images=scored, unscored=len(entries) - scored)


def _accuracy_line(accuracy: Dict[str, float]) -> str:
    figures = f"top-1 {accuracy['top1']:.2f}%, top-5 {accuracy['top5']:.2f}%"
    if not accuracy['unscored']:
        return f"accuracy, each image's folder naming its class: {figures} over {accuracy['images']} images"
    return (f"accuracy, each image's folder naming its class: {figures} over the {accuracy['images']} of "
            f"{accuracy['images'] + accuracy['unscored']} images in a folder named after a class (the other "
            f"{accuracy['unscored']} are not scored)")


def _report_skipped(skipped: List[str], log) -> None:
    for path in skipped[:MAX_SKIP_LINES]:
        # the reason is found again here: the loader workers only say that the image failed
        log(f'skipped {_open_problem(path) or path + ": unreadable (it reads now: changed during the run?)"}')
    if len(skipped) > MAX_SKIP_LINES:
        log(f'... and {len(skipped) - MAX_SKIP_LINES} more unreadable images (all listed in predict.json)')


def run_predict(cfg) -> Dict[str, object]:
    """Classify the images under ``INPUT``; returns the predict.json summary."""
    paths, ignored = check_predict_inputs(cfg)
    # the network, the weights and the labels are checked before the run folder is made
    early = []
    model, info = build_model(cfg)
    load_weights(model, cfg.RESUME_PATH, cfg.NET.EMA.USE, early.append)
    labels, source, note = class_labels(cfg.RESUME_PATH, cfg.DATASET.NUM_CLASSES)
    k = min(cfg.PREDICT.TOPK, cfg.DATASET.NUM_CLASSES)
    batch_size = cfg.DATASET.BATCH_SIZE * cfg.DATASET.VAL_BATCH_MUL
    # worker processes only pay off with more than a batch or so to decode
    workers = max(0, min(cfg.WORKERS, math.ceil(len(paths) / batch_size) - 1))
    dataset = _ImageFiles(paths)
    loader = eval_loader(cfg, dataset, info.input_size, batch_size, workers)

    out_dir = create_output_dir(cfg.SAVE_PATH, cfg.MODEL, cfg.dump(), 'predict')
    log = setup_logging(os.path.join(out_dir, 'predict.log')).info
    log(f'{info.name} @{info.input_size}px, {cfg.DATASET.NUM_CLASSES} classes (labels: {source})')
    for line in early + ([note] if note else []):
        log(line)
    if ignored:  # e.g. a FIFO named x.png: opening it would wait forever for a writer
        log(f"ignored {len(ignored)} {'entry' if len(ignored) == 1 else 'entries'} named like images but not "
            f'regular files (first: {ignored[0]})')
    log(f'classifying {len(paths)} images from {cfg.INPUT} (INFERENCE {cfg.INFERENCE}, '
        f'batch {batch_size}, {workers} loader workers)')
    runner = create_runner(model, info.input_size, cfg.INFERENCE, threads_beside_loader(workers), log)
    start = time.time()
    try:
        entries, top5 = _predict(runner, loader, labels, paths, k, show_progress=True)
    finally:
        runner.close()
    seconds = time.time() - start
    loader.close()
    predicted = {entry['path'] for entry in entries}
    skipped = [p for p in paths if p not in predicted]
    for line in _table(entries, cfg.INPUT, len(entries)):
        log(line)
    _report_skipped(skipped, log)
    if not entries:
        raise UserError(f"none of the {len(paths)} images under INPUT '{cfg.INPUT}' could be read: nothing predicted")

    # a named image is a look-up, not an evaluation: only a folder is scored against its folder names
    folder_names = imagenet_synsets() if source == 'imagenet' else ()
    accuracy = folder_accuracy(entries, top5, labels, folder_names) if os.path.isdir(cfg.INPUT) else None
    if accuracy:
        log(_accuracy_line(accuracy))
    predictions_file = os.path.join(out_dir, 'predictions.json')
    write_json_atomic(entries, predictions_file)
    summary = dict(model=info.name, arch=info.path, input_size=info.input_size,
                   weights=os.path.abspath(cfg.RESUME_PATH), input=os.path.abspath(cfg.INPUT), labels=source, topk=k,
                   inference=runner.name, images=len(paths), predicted=len(entries), skipped=len(skipped),
                   unreadable=skipped,
                   seconds=seconds, images_per_sec=len(entries) / max(seconds, 1e-9), accuracy=accuracy)
    write_json_atomic(summary, os.path.join(out_dir, 'predict.json'))
    log(f'predicted {len(entries)} of {len(paths)} images, skipped {len(skipped)} unreadable, in {seconds:.1f} s '
        f'({summary["images_per_sec"]:.1f} images/s): {predictions_file}')
    return summary
