"""The configs of the commands that make files: ``ExportConfig`` (a model file), ``DownloadConfig`` and
``SynthConfig`` (data sets). Field names are the long flags; each field's ``flag`` says the rest."""

from __future__ import annotations

from dataclasses import dataclass

from .choices import EXPORT_FORMATS
from .flags import flag
from .shared import BatchConfig, CommandConfig, checkpoint_flag, max_pixels_flag, output_flag
from .tuning import CALIBRATION_IMAGES
from .values import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    width_x_height,
)

INT8 = "int8 (OpenVINO; needs pip install 'perspective[openvino]')"  # the -h heading of export's int8 flags


@dataclass
class ExportConfig(BatchConfig):
    """``perspective export``: the format, the parity check, and int8 quantization with its accuracy gate."""

    checkpoint: str | None = checkpoint_flag()
    format: str = flag("onnx", "file format (default {default})", choices=EXPORT_FORMATS)
    output: str | None = output_flag(None, "file to write (.onnx; .pt for TorchScript; .xml for OpenVINO, with its "
                                           ".bin beside it)")
    # largest accepted abs difference from the PyTorch model, both in fp32
    tolerance: float = flag(1e-4, "largest abs difference from PyTorch in fp32 (default {default:g})",
                            type=positive_float)
    quiet: bool = flag(False, "no info logs")
    int8: bool = flag(False, "post-training quantization with NNCF; needs --calibration", group=INT8)
    calibration: str | None = flag(None, f"images like the model will see: {CALIBRATION_IMAGES} calibrate, the rest "
                                         "check", metavar="DIR", group=INT8)
    check: str | None = flag(None, "images for the check (default: --calibration's unused ones)", metavar="DIR",
                             group=INT8)
    # largest accepted fall of R² (or label agreement) against fp32
    max_drop: float = flag(0.01, "refuse int8 when its R² against fp32 (classes: agreement) is this far below 1 "
                                 "(default {default:g})", type=non_negative_float, group=INT8)
    workers: int | None = flag(None, "decoding threads (default: min(CPU count, 8))")


@dataclass
class DownloadConfig(CommandConfig):
    """``perspective download``: which URL list, where to, and how to download it.

    Args:
        list: a text file of URLs, or a CSV with a url column.
        output: the folder for the images and manifest.csv.
        workers: downloads at the same time (asyncio tasks and pooled connections): the network
            waits, so more than the cores.
        timeout: seconds to connect, and seconds without data while reading, before an attempt fails.
        retries: further attempts after a timeout, a 5xx, a 429 or a dropped connection.
        backoff: seconds before the first retry, doubled for each next one up to 60 s (a server's
            Retry-After, capped at 60 s too, wins when it says more).
        max_mb: largest file in MiB; a bigger one is abandoned (and not retried).
        max_pixels: largest image, width x height, read from its header before decoding.
    """

    list: str | None = flag(None, "text file of URLs, or CSV with a url column", positional=True, required=True,
                            metavar="LIST")
    output: str | None = output_flag(None, "folder for the images and manifest.csv", "--out")
    workers: int = flag(8, "downloads at once, more than the cores: they wait on the network (default {default})",
                        "-w", type=positive_int)
    timeout: float = flag(20.0, "seconds without a connection or data before an attempt fails (default {default:g})",
                          type=positive_float)
    retries: int = flag(3, "attempts after a timeout, 5xx, 429 or dropped connection (default {default})",
                        type=non_negative_int)
    backoff: float = flag(1.0, "seconds before a retry, doubled up to 60 (default {default:g})",
                          type=non_negative_float)
    max_mb: float = flag(50.0, "largest file in MiB (default {default:g})", type=positive_float)
    max_pixels: int = max_pixels_flag()
    quiet: bool = flag(False, "no progress bar, only warnings")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)


@dataclass
class SynthConfig(CommandConfig):
    """``perspective synth``: how many synthetic photos, from which seed, at which size."""

    output: str | None = output_flag(None, "output folder (created if missing)", "--out")
    count: int | None = flag(None, "number of images", "-n", type=positive_int, required=True)
    seed: int | None = flag(None, "data set seed (0 or more)", type=non_negative_int, required=True)
    size: tuple[int, int] = flag((320, 240), "image size WIDTHxHEIGHT (default {default[0]}x{default[1]})",
                                 type=width_x_height, metavar="WIDTHxHEIGHT")
    # None: default_workers(); the files do not depend on it
    workers: int | None = flag(None, "rendering processes, 0 = this one; same files (default: min(CPU count, 8))", "-w",
                               type=non_negative_int)
    quiet: bool = flag(False, "no progress bar")
