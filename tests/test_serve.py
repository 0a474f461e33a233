"""The prediction server as users meet it: a real ``python serve.py`` process driven over HTTP.

Two servers per module, started together (the model loads once in each): an open one with small
limits so every refusal is cheap to provoke, and one that needs an API key.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import httpx
import pytest
import torch
from conftest import ROOT, run_script
from PIL import Image
from server_process import Server, start_server

from perspective.data import list_images
from perspective.models import load_checkpoint, shipped_checkpoint
from perspective.prediction import Predictor
from perspective.serving import MicroBatcher

SAMPLES = [str(p) for p in list_images(ROOT / "sample_set")]
API_KEY = "s3cret-key"
MAX_PIXELS = 4_000_000
# The server and infer.py both use Predictor at its default precision (bf16 where native). On this
# project's CPUs a score moves by about 1e-7 with the composition of its batch (measured), so infer.py's
# 1e-4 holds; CUDA kernels picked per batch size move bf16 results more, hence 0.02 there.
TOLERANCE = 0.02 if torch.cuda.is_available() else 1e-4


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Both servers, started at once so their start-ups overlap; SIGTERM must stop each with exit 0."""
    started = {
        "open": start_server(tmp_path_factory.mktemp("serve_open"), "--max-upload-mb", "1",
                             "--max-pixels", str(MAX_PIXELS), "--max-files", "8"),
        "keyed": start_server(tmp_path_factory.mktemp("serve_keyed"), "--api-key", API_KEY),
    }
    try:
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.proc.send_signal(signal.SIGTERM)
        codes = {name: server.wait_stopped() for name, server in started.items()}  # one SIGTERM each
    assert codes == {"open": 0, "keyed": 0}, codes


@pytest.fixture(scope="module")
def server(servers) -> Server:
    return servers["open"]


@pytest.fixture(scope="module")
def keyed_server(servers) -> Server:
    return servers["keyed"]


@pytest.fixture(scope="module")
def expected() -> dict[str, dict[str, float]]:
    """infer.py's numbers for every sample image: its predictor (runtime, device, precision) with its defaults."""
    from perspective.config import InferConfig
    from perspective.prediction import predictor_for

    predictor = predictor_for(InferConfig(), load_checkpoint(shipped_checkpoint()))  # as serve.py and infer.py
    rows = predictor.predict_paths(SAMPLES, batch_size=32, progress=False)
    return {Path(r["path"]).name: {n: r[n] for n in predictor.model.names} for r in rows}


def files(*paths: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (Path(p).name, Path(p).read_bytes(), "image/jpeg")) for p in paths]


def assert_matches(item: dict, expected: dict[str, dict[str, float]]) -> None:
    want = expected[item["filename"]]
    assert item["scores"].keys() == want.keys()
    for name, value in want.items():
        assert item["scores"][name] == pytest.approx(value, abs=TOLERANCE), (item["filename"], name)


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height``: what a decompression bomb looks like before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_health_model_and_docs(server):
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["model"] == "resnet18_synthetic"
    info = httpx.get(f"{server.url}/model").json()
    model = load_checkpoint(shipped_checkpoint())
    assert (info["backbone"], info["task"], info["image_size"]) == ("resnet18", "regression", 160)
    assert info["targets"] == model.names and info["checkpoint"] == "resnet18_synthetic.ckpt"
    assert info["training_metrics"]["train_stats"]["n"] == model.hparams.train_stats["n"]
    assert info["training_metrics"]["best_checkpoint_score"] is None  # the slim checkpoint keeps no callbacks
    assert info["novelty"] == 0.01  # the shipped model carries a novelty summary; --novelty's default level
    assert httpx.get(f"{server.url}/docs").status_code == 200
    assert "/predict" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def test_one_image_gets_every_target_as_infer_predicts_it(server, expected):
    response = httpx.post(f"{server.url}/predict", files=files(SAMPLES[1]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "resnet18_synthetic" and body["latency_ms"] > 0
    [item] = body["predictions"]
    assert item["filename"] == "000001.jpg"
    assert_matches(item, expected)


def test_a_photo_of_noise_comes_back_flagged_novel_and_a_car_photo_does_not(server):
    noise = io.BytesIO()
    Image.effect_noise((320, 240), 80).convert("RGB").save(noise, "JPEG")
    response = httpx.post(f"{server.url}/predict", files=[*files(SAMPLES[4]),
                                                          ("file", ("noise.jpg", noise.getvalue(), "image/jpeg"))])
    assert response.status_code == 200, response.text
    car, flagged = response.json()["predictions"]
    assert (car["novel"], flagged["novel"]) == (False, True)
    assert flagged["novelty_p"] <= 0.01 < car["novelty_p"]
    [line] = server.log_lines(f"prediction id={response.headers['X-Request-ID']} file=\"noise.jpg\"")
    assert "novel=true" in line


def test_several_files_in_one_request_keep_their_order(server, expected):
    chosen = [SAMPLES[5], SAMPLES[2], SAMPLES[7]]
    response = httpx.post(f"{server.url}/predict", files=files(*chosen))
    assert response.status_code == 200, response.text
    items = response.json()["predictions"]
    assert [i["filename"] for i in items] == [Path(p).name for p in chosen]
    for item in items:
        assert_matches(item, expected)


def test_raw_image_body(server, expected):
    response = httpx.post(f"{server.url}/predict", content=Path(SAMPLES[3]).read_bytes(),
                          headers={"Content-Type": "image/jpeg", "X-Filename": "000003.jpg"})
    assert response.status_code == 200, response.text
    assert_matches(response.json()["predictions"][0], expected)


def test_exif_orientation_is_applied_as_load_image_does(server, expected):
    """A PNG stored sideways with an EXIF 'rotate' tag predicts like the upright original."""
    upright = Image.open(SAMPLES[4]).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, format="PNG", exif=exif)
    response = httpx.post(f"{server.url}/predict", files=[("file", ("000004.jpg", buffer.getvalue(), "image/png"))])
    assert response.status_code == 200, response.text
    assert_matches(response.json()["predictions"][0], expected)


def test_50_concurrent_requests_are_batched_and_match_infer(server, expected):
    before = httpx.get(f"{server.url}/health").json()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(
                client.post(f"{server.url}/predict", files=files(SAMPLES[i % len(SAMPLES)])) for i in range(50)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 50
    for response in responses:
        assert_matches(response.json()["predictions"][0], expected)
    after = httpx.get(f"{server.url}/health").json()
    assert after["images"] - before["images"] == 50
    assert after["forward_passes"] - before["forward_passes"] < 50  # some requests shared a forward pass


def _chunked(data: bytes, size: int = 64 * 1024):
    for i in range(0, len(data), size):
        yield data[i:i + size]


JPEG = Path(SAMPLES[0]).read_bytes()
BAD_UPLOADS = {
    "not_an_image": (dict(files=[("file", ("notes.txt", b"hello, not a picture", "text/plain"))]), 400, "not an image"),
    "corrupt_jpeg": (dict(files=[("file", ("cut.jpg", JPEG[: len(JPEG) // 2], "image/jpeg"))]), 400, "corrupt"),
    "empty_file": (dict(files=[("file", ("empty.jpg", b"", "image/jpeg"))]), 400, "empty"),
    "one_bad_among_good": (dict(files=files(SAMPLES[0]) + [("file", ("x.jpg", b"junk", "image/jpeg"))]), 400, "x.jpg"),
    "over_pixel_limit": (dict(files=[("file", ("big.png", png_header(3000, 2000), "image/png"))]), 400,
                         f"limit of {MAX_PIXELS} pixels"),
    "decompression_bomb": (dict(files=[("file", ("bomb.png", png_header(40000, 40000), "image/png"))]), 400,
                           "too many pixels"),
    "no_file_part": (dict(files=[("other", ("a.jpg", JPEG, "image/jpeg"))]), 422, "no image"),
    "empty_body": (dict(), 422, "no image"),
    "json_body": (dict(json={"file": "car.jpg"}), 422, "no image"),
    "no_boundary": (dict(content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}), 400, "boundary"),
    "too_many_files": (dict(files=files(*SAMPLES[:9])), 413, "limit is 8"),
    "over_upload_limit": (dict(content=b"\xff" * (2**20 + 10), headers={"Content-Type": "image/jpeg"}), 413,
                          "over the limit"),
    "chunked_over_limit": (dict(content=_chunked(b"\xff" * (2**20 + 10)), headers={"Content-Type": "image/jpeg"}),
                           413, "over the limit"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_is_refused_with_a_reason_and_the_server_stays_up(server, case):
    kwargs, status, reason = BAD_UPLOADS[case]
    response = httpx.post(f"{server.url}/predict", timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert reason in response.json()["detail"]
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert httpx.post(f"{server.url}/predict", files=files(SAMPLES[0])).status_code == 200


def test_oversized_uploads_are_refused_before_being_read(server):
    """Content-Length over the limit: nothing read; chunked: reading stops just past the limit."""
    limit = 2**20
    declared = httpx.post(f"{server.url}/predict", content=b"\xff" * (4 * limit),
                          headers={"Content-Type": "image/jpeg"}, timeout=30)
    chunked = httpx.post(f"{server.url}/predict", content=_chunked(b"\xff" * (4 * limit)),
                         headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert declared.status_code == chunked.status_code == 413
    [line] = server.log_lines(f"request id={declared.headers['X-Request-ID']}")
    assert "status=413 images=0 bytes=0 " in line, line
    [line] = server.log_lines(f"request id={chunked.headers['X-Request-ID']}")
    read = int(re.search(r"bytes=(\d+)", line).group(1))
    assert limit < read < 2 * limit, line


def test_chunked_upload_within_the_limit_is_accepted(server, expected):
    response = httpx.post(f"{server.url}/predict", content=_chunked(Path(SAMPLES[6]).read_bytes(), 1000),
                          headers={"Content-Type": "image/jpeg", "X-Filename": "000006.jpg"})
    assert response.status_code == 200, response.text
    assert_matches(response.json()["predictions"][0], expected)


def test_log_file_has_requests_rejections_and_predictions(server):
    good = httpx.post(f"{server.url}/predict", files=files(SAMPLES[8], SAMPLES[9]))
    bad = httpx.post(f"{server.url}/predict", files=[("file", ("notes.txt", b"plain text", "text/plain"))])
    good_id, bad_id = good.headers["X-Request-ID"], bad.headers["X-Request-ID"]

    [access] = server.log_lines(f"request id={good_id}")
    assert re.search(r"client=127\.0\.0\.1:\d+ method=POST path=\"/predict\" status=200 images=2 bytes=\d{4,} "
                     r"latency_ms=[\d.]+", access), access
    predictions = server.log_lines(f"prediction id={good_id}", count=2)
    assert [re.search(r'file="(\S+)"', line).group(1) for line in predictions] == ["000008.jpg", "000009.jpg"]
    scores = json.loads(predictions[0].split("scores=", 1)[1])
    assert scores == pytest.approx(good.json()["predictions"][0]["scores"], abs=1e-4)
    [rejected] = server.log_lines(f"rejected id={bad_id}")
    assert "status=400" in rejected and "notes.txt: not an image" in rejected
    assert "status=400 images=1" in server.log_lines(f"request id={bad_id}")[0]


def test_api_key_when_set(keyed_server, server):
    url = keyed_server.url
    assert httpx.post(f"{url}/predict", files=files(SAMPLES[0])).status_code == 401
    wrong = httpx.post(f"{url}/predict", files=files(SAMPLES[0]), headers={"X-API-Key": "guess"})
    assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["detail"]
    assert httpx.get(f"{url}/model").status_code == 401
    right = httpx.post(f"{url}/predict", files=files(SAMPLES[0]), headers={"X-API-Key": API_KEY})
    assert right.status_code == 200 and len(right.json()["predictions"]) == 1
    assert httpx.get(f"{url}/health").status_code == 200  # stays open for load balancers
    assert keyed_server.log_lines("status=401", count=3)
    # without --api-key nothing is asked, whatever the client sends
    assert httpx.get(f"{server.url}/model", headers={"X-API-Key": "anything"}).status_code == 200


@pytest.mark.parametrize("which", ["open", "keyed"])
def test_schemathesis_finds_nothing_against_the_live_server(which, server, keyed_server, tmp_path):
    """The OpenAPI schema is the contract: schemathesis's every check, a bounded number of examples."""
    live = server if which == "open" else keyed_server
    header = [] if which == "open" else ["-H", f"X-API-Key: {API_KEY}"]
    result = subprocess.run(
        [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()", "run",
         f"{live.url}/openapi.json", "--checks", "all", "--max-examples", "25",
         "--seed", "1", "--request-timeout", "30", *header],
        cwd=ROOT, capture_output=True, text=True, timeout=300)  # ROOT: its schemathesis.toml
    assert result.returncode == 0, result.stdout[-4000:]
    assert "No issues found" in result.stdout


def test_without_a_key_the_schema_asks_for_none_and_with_one_it_documents_401(server, keyed_server):
    open_schema = httpx.get(f"{server.url}/openapi.json").json()
    keyed_schema = httpx.get(f"{keyed_server.url}/openapi.json").json()
    assert "securitySchemes" not in open_schema.get("components", {})
    assert "401" not in open_schema["paths"]["/predict"]["post"]["responses"]
    assert keyed_schema["paths"]["/model"]["get"]["security"] == [{"APIKeyHeader": []}]
    for code in ("400", "401", "413", "422", "503"):
        assert code in keyed_schema["paths"]["/predict"]["post"]["responses"], code
    assert httpx.get(f"{server.url}/model").status_code == 200  # as the schema says: no key needed


def test_usage_errors_are_one_line_and_exit_2(tmp_path):
    for args, message in (
        (("--max-batch", "0"), "--max-batch: must be at least 1"),
        (("-c", str(tmp_path / "missing.ckpt")), "no such file"),
    ):
        result = run_script("serve.py", *args, "--log-file", str(tmp_path / "api.log"), cwd=tmp_path, timeout=60)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_micro_batcher_groups_images_that_arrive_together_and_keeps_their_order():
    """In-process: 10 requests announced at once become one pass of 8 and one of 2."""
    passes = []

    def run_batch(images):
        passes.append(len(images))
        return torch.stack(images) * 2

    async def scenario():
        batcher = MicroBatcher(run_batch, max_batch=8, max_wait_s=1.0, max_queue=10)
        batcher.start()

        async def one(i):
            with batcher.expect(1):
                await asyncio.sleep(0.001 * i)  # decoding
            return await batcher.predict([torch.tensor([float(i)])])

        try:
            results = await asyncio.gather(*(one(i) for i in range(10)))
            with pytest.raises(Exception, match="busy"), batcher.expect(11):
                pass
        finally:
            await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert [float(r[0][0]) for r in results] == [2.0 * i for i in range(10)]
    assert passes == [8, 2]


def test_classification_model_answers_label_confidence_and_probabilities(tmp_path):
    """In-process (the app's lifespan run by hand): the classification response, null training metrics."""
    from perspective.models import PerspectiveModel
    from perspective.models.backbones import default_preprocessing
    from perspective.serving import ServeConfig, create_app

    classes = ["front", "rear", "side"]
    model = PerspectiveModel(backbone="resnet18", task="classification", class_names=classes, weights="none",
                             preprocessing=default_preprocessing("resnet18", 32).to_dict())
    checkpoint = tmp_path / "classifier.ckpt"
    torch.save({"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, checkpoint)
    predictor = Predictor(load_checkpoint(checkpoint), "cpu", "32")
    app = create_app(predictor, checkpoint, ServeConfig(max_wait_ms=0))

    async def ask():
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.post("/predict", files=files(SAMPLES[0], SAMPLES[1])), await client.get("/model")

    response, info = asyncio.run(ask())
    info = info.json()
    assert response.status_code == 200, response.text
    want = list(predictor.predict_paths(SAMPLES[:2], progress=False))
    for item, row in zip(response.json()["predictions"], want, strict=True):
        assert item["label"] == row["label"] and item["label"] in classes
        assert list(item["probabilities"]) == classes
        assert sum(item["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert item["confidence"] == pytest.approx(row["confidence"], abs=1e-4) == max(item["probabilities"].values())
    assert info["classes"] == classes and info["task"] == "classification" and "targets" not in info
    assert info["training_metrics"] == {"epoch": None, "global_step": None, "best_checkpoint_score": None,
                                        "train_stats": None}
