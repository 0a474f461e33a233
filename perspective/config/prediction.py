"""The configs of the commands that predict with a model: ``PredictConfig`` (what they share), then
``InferConfig``, ``EvaluateConfig``, ``SelectConfig`` and ``ServeConfig``. Field names are the long
flags; each field's ``flag`` says its help, short flag, value check and -h group."""

from __future__ import annotations

from dataclasses import dataclass

from .choices import RESULT_FORMATS, SELECT_METHODS, SPLITS
from .flags import HARDWARE, MODEL, flag
from .labelling import LabelStudioConfig
from .shared import (
    DeviceConfig,
    checkpoint_flag,
    images_flag,
    max_pixels_flag,
    output_flag,
    runtime_flag,
    tta_flag,
)
from .tuning import NOVELTY_LEVEL, default_workers
from .values import (
    coverage_level,
    existing_file,
    existing_folder,
    existing_path,
    fraction,
    non_negative_float,
    non_negative_int,
    output_path,
    port,
    positive_float,
    positive_int,
)


@dataclass
class PredictConfig(DeviceConfig):
    """Settings of every command that predicts with a model (infer, evaluate, serve, select)."""

    checkpoint: str | None = checkpoint_flag("a checkpoint of train, or an exported .onnx or OpenVINO .xml")
    device: str = flag("auto", "the device: auto, cpu or cuda[:N] (default {default})", group=HARDWARE)
    compile: bool = flag(False, "torch.compile: a slow first batch, then faster", group=HARDWARE)
    tta: bool = tta_flag()
    interval: float | None = flag(None, "conformal intervals or class sets at this coverage, such as 0.9 (default "
                                        "off)", type=coverage_level, metavar="LEVEL", group=MODEL)
    runtime: str = runtime_flag()
    novelty: float = flag(NOVELTY_LEVEL, "flag a photo novel when its novelty p-value is at most this; 0: never "
                                         "(default {default:g})", type=fraction, metavar="LEVEL", group=MODEL)

    @property
    def decoding_workers(self) -> int:
        """``workers``, or ``default_workers()`` when not given."""
        return default_workers() if self.workers is None else self.workers


@dataclass
class InferConfig(PredictConfig):
    """``perspective infer``: predict for images, one row each, into a result file."""

    image: list[str] = flag(help="image paths or quoted glob patterns", short="-i", default_factory=list, nargs="+",
                            metavar="PATH")
    data: str | None = flag(None, "predict every image in this folder", "-d", aliases=("--directory",),
                            type=existing_folder, metavar="DIR")  # a folder of images
    recursive: bool = flag(False, "with -d, include subfolders", "-R")
    list: str | None = flag(None, "a path a line, or a CSV with a filename or path column", type=existing_file,
                            metavar="FILE")  # a file naming the images
    output: str = output_flag("last_results.csv", "the result file", "-r", "--result-csv")
    format: str = flag("csv", "result format; parquet needs pyarrow (default {default})", choices=RESULT_FORMATS)
    resume: bool = flag(False, "predict only the images an interrupted run left (default: start over)")
    log_every: int = flag(10_000, "a log line every N images per process (default {default})", type=positive_int,
                          metavar="N")
    labels: str | None = flag(None, "labels CSV: true_* columns and metrics (default: a labels.csv beside -d)")
    label_column: str | None = flag(None, "class column of --labels (default: the checkpoint's)")
    show: int = flag(20, "rows to print on stdout (default {default})", type=int)
    explain: str | None = flag(None, "a Grad-CAM PNG per image into DIR (needs perspective[explain]) (default off)",
                               type=output_path, metavar="DIR")


@dataclass
class EvaluateConfig(PredictConfig):
    """``perspective evaluate``: metrics, plots and a report of a model on labelled data."""

    data: str | None = flag(None, "labels.csv + images/, a CSV, or class subfolders", "-d", type=existing_path,
                            required=True)
    images: str | None = images_flag()
    label_column: str | None = flag(None, "a CSV's class column (default: the checkpoint's, else label)")
    output: str = output_flag("evaluation", "output folder", "--out")
    split: str = flag("all", "all the data, or a part of the training run's split (default {default})", choices=SPLITS)
    seed: int | None = flag(None, "split seed (default: the training run's)", type=non_negative_int)
    samples: int = flag(16, "images in the sample grid (default {default})", type=non_negative_int)
    explain_samples: int = flag(4, "random images with Grad-CAM in the report (default {default})",
                                type=non_negative_int, metavar="N")
    calibrate: bool = flag(False, "store a conformal calibration from this data (unseen in training) in -c")


@dataclass
class SelectConfig(PredictConfig, LabelStudioConfig):
    """``perspective select``: which unlabelled photos to label next (and, with ``label_studio``, a project's
    tasks for them)."""

    checkpoint: str | None = checkpoint_flag()
    data: str | None = flag(None, "the unlabelled photos, subfolders too", "-d", type=existing_folder, required=True)
    count: int = flag(100, "photos to choose (default {default})", "-n", type=positive_int)
    output: str = output_flag("select", "folder for select.csv and select.png")
    by: str = flag("balanced", "balanced = uncertainty times distance to the chosen and labelled; uncertainty alone; "
                               "random, the baseline (default {default})", choices=SELECT_METHODS)
    # photos labelled already: the diversity term counts them as chosen
    labelled: str | None = flag(None, "photos labelled already, counted as chosen (default: none)",
                                type=existing_folder, metavar="DIR")
    seed: int = flag(0, "seed of --by random (default {default})", type=non_negative_int)


@dataclass
class ServeConfig(PredictConfig):
    """``perspective serve``: the HTTP server's address, log, batching and limits.

    ``batch_size`` is the most images in one forward pass; ``max_wait_ms`` how long the first image
    of a batch may wait for more (the batcher waits only while other requests are still being
    decoded, so a lone request never waits); ``workers`` the threads that parse uploads and decode
    images; ``max_queue`` the most images waiting for the model (503 beyond).
    """

    # a batch waits for the slowest upload in it: smaller than offline prediction's
    batch_size: int = flag(16, "most images in one forward pass; fewer than infer's, as a batch waits for its slowest "
                               "upload (default {default})", aliases=("--max-batch",))
    workers: int | None = flag(None, "upload decoding threads (default: min(CPU count, 8))")
    quiet: bool = flag(False, "only warnings on stderr; the log file keeps all")
    host: str = flag("127.0.0.1", "address; 0.0.0.0 opens it to the network (default {default})")
    port: int = flag(8000, "port; 0 = any free one, logged (default {default})", type=port)
    log_file: str = flag("api.log", "log file, rotated by size (default ./{default})")
    log_max_mb: float = flag(10.0, "rotate the log file at this size (default {default:g})", type=positive_float)
    log_backups: int = flag(5, "rotated log files kept (default {default})", type=non_negative_int)
    max_wait_ms: float = flag(10.0, "a batch's wait for images being decoded (default {default:g})",
                              type=non_negative_float)
    max_upload_mb: float = flag(10.0, "largest request in MiB, else 413 (default {default:g})", type=positive_float)
    max_pixels: int = max_pixels_flag()
    max_files: int = flag(64, "most files in one request (default {default})", type=positive_int)
    max_queue: int = 512
    api_key: str | None = flag(None, "X-API-Key that /predict, /explain and /model require (default: none)")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def decode_threads(self) -> int:
        return max(1, self.decoding_workers)
