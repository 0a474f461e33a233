"""The download tool against a local HTTP server on 127.0.0.1: good images, broken links, a slow answer,
a 500 that recovers, a web page named .jpg, oversized files; the folder, the manifest and the rerun.

The server runs in a thread of the test process (loopback only, a free port); every request is counted
so that the tests can tell a skipped file from a downloaded one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, ctrl_c_at_default
from PIL import Image

from perspective.download import (
    IMAGE_EXTENSIONS,
    DownloadConfig,
    download_all,
    plan_names,
    read_url_list,
    safe_name,
    url_hash,
    write_manifest,
)

FAST = DownloadConfig(workers=4, timeout=0.5, retries=2, backoff=0.01)
FAST_FLAGS = ("--timeout", "0.5", "--retries", "2", "--backoff", "0.01", "-w", "4", "-q")


def image_bytes(name: str, fmt: str = "JPEG", size: tuple[int, int] = (24, 16)) -> bytes:
    """A tiny image whose colour depends on ``name``, so different URLs give different files."""
    colour = tuple(hashlib.sha1(name.encode()).digest()[:3])
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


class Site:
    """What the local server serves, and how often each path was asked for."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()  # lets the slow handler go at teardown
        self.url = ""

    def count(self, path: str) -> int:
        with self.lock:
            self.hits[path] += 1
            return self.hits[path]


def make_handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def send(self, status: int, body: bytes, content_type: str = "image/jpeg", length: bool = True) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            path, query = parts.path, parts.query
            hit = site.count(self.path)
            name = Path(path).name
            if path.startswith("/img/"):
                fmt = "PNG" if name.endswith(".png") else "JPEG"
                self.send(200, image_bytes(name, fmt), f"image/{fmt.lower()}")
            elif path.startswith("/noext/"):
                self.send(200, image_bytes(name, "PNG"), "image/png")
            elif path.startswith("/flaky/"):
                fails = int(query.removeprefix("fail=") or 1)
                if hit <= fails:
                    self.send(500, b"<h1>try again</h1>", "text/html")
                else:
                    self.send(200, image_bytes(name))
            elif path == "/slow.jpg":
                site.release.wait(5)
                try:
                    self.send(200, image_bytes(name))
                except OSError:
                    pass  # the client gave up long ago
            elif path == "/page.jpg":
                self.send(200, b"<!doctype html><html><body>Not a photo</body></html>", "text/html; charset=utf-8")
            elif path == "/redirect.jpg":
                self.send_response(302)
                self.send_header("Location", "/img/redirect-target.jpg")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/truncated.jpg":
                data = image_bytes(name, size=(200, 150))
                self.send(200, data[: len(data) // 2])
            elif path == "/stall.jpg":  # a start, then nothing: the download is in flight until the client gives up
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"\xff\xd8" + b"\0" * 1000)
                self.wfile.flush()
                site.release.wait(5)
            elif path == "/big.jpg":
                self.send(200, b"\xff" * 50_000)
            elif path == "/big-stream.jpg":
                self.send(200, b"\xff" * 50_000, length=False)  # HTTP/1.0: ends when the connection closes
            else:
                self.send(404, b"not found", "text/plain")

    return Handler


@pytest.fixture(scope="module")
def site():
    site = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(site))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield site
    finally:
        site.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_download(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perspective", "download", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def read_manifest(out: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def folder(out: Path) -> list[str]:
    return sorted(os.listdir(out))


# --- the full run, as a user meets it ---------------------------------------------------------

@pytest.fixture(scope="module")
def mixed(site, tmp_path_factory):
    """A labelled CSV of every kind of URL, downloaded once by the command: (list, out, result, hits after)."""
    tmp = tmp_path_factory.mktemp("mixed")
    u = site.url
    rows = [
        ("url", "label", "filename", "perspective_score_hood"),
        (f"{u}/img/red.jpg", "front", "", "0.5"),
        (f"{u}/img/blue.png", "rear", "my car (1).png", "0.25"),
        (f"{u}/noext/green", "side", "", "1"),
        (f"{u}/missing.jpg", "x", "", "0"),
        (f"{u}/slow.jpg", "x", "", "0"),
        (f"{u}/flaky/recovers.jpg?fail=2", "front", "", "0.125"),
        (f"{u}/page.jpg", "x", "", "0"),
        (f"{u}/redirect.jpg", "rear", "", "0.75"),
        (f"{u}/truncated.jpg", "x", "", "0"),
        (f"http://127.0.0.1:{closed_port()}/refused.jpg", "x", "", "0"),
        ("not a url", "x", "", "0"),
        (f"{u}/img/red.jpg", "front again", "", "0.5"),
    ]
    listing = tmp / "list.csv"
    with open(listing, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    out = tmp / "out"
    result = run_download(str(listing), "--out", str(out), *FAST_FLAGS)
    return listing, out, result, Counter(site.hits)


def test_good_images_are_kept_and_every_failure_is_recorded(mixed, site):
    listing, out, result, hits = mixed
    assert result.returncode == 0, result.stderr
    assert folder(out) == ["green.png", "manifest.csv", "my_car_1.png", "recovers.jpg", "red.jpg", "redirect.jpg"]
    for name in ("green.png", "my_car_1.png", "recovers.jpg", "red.jpg", "redirect.jpg"):
        with Image.open(out / name) as img:
            img.load()
    assert (out / "red.jpg").read_bytes() == image_bytes("red.jpg")

    columns, rows = read_manifest(out)
    assert columns == ["url", "file", "status", "error", "label", "filename", "perspective_score_hood"]
    assert [r["label"] for r in rows] == ["front", "rear", "side", "x", "x", "front", "x", "rear", "x", "x", "x",
                                          "front again"]
    assert [r["perspective_score_hood"] for r in rows][:3] == ["0.5", "0.25", "1"]  # kept as written
    assert rows[1]["filename"] == "my car (1).png"
    by_path = {urlsplit(r["url"]).path or r["url"]: r for r in rows[:-1]}
    expect = {
        "/img/red.jpg": ("red.jpg", "ok", ""),
        "/img/blue.png": ("my_car_1.png", "ok", ""),
        "/noext/green": ("green.png", "ok", ""),
        "/flaky/recovers.jpg": ("recovers.jpg", "ok", ""),
        "/redirect.jpg": ("redirect.jpg", "ok", ""),
        "/missing.jpg": ("", "error", "HTTP 404 Not Found"),
        "/slow.jpg": ("", "error", "timed out (0.5 s without an answer) (after 3 attempts)"),
        "/page.jpg": ("", "error", "not an image"),
        "/truncated.jpg": ("", "error", "broken image"),
        "/refused.jpg": ("", "error", "cannot connect (Connection refused)"),
        "not a url": ("", "error", "not an http(s) URL"),
    }
    for path, (file, status, error) in expect.items():
        row = by_path[path]
        assert (row["file"], row["status"]) == (file, status), row
        assert error in row["error"] and (error or not row["error"]), row
    assert "text/html" in by_path["/page.jpg"]["error"]
    assert rows[-1]["status"] == "duplicate" and rows[-1]["file"] == "red.jpg" and "line 2" in rows[-1]["error"]

    assert hits["/missing.jpg"] == 1  # a 4xx is a broken link: not retried
    assert hits["/slow.jpg"] == 3  # timeouts are retried: 1 + --retries 2
    assert hits["/flaky/recovers.jpg?fail=2"] == 3  # two 500s, then the image
    assert hits["/img/red.jpg"] == 1  # the repeated URL is downloaded once
    assert re.search(r"^12 URLs: 5 ok, 0 exists, 1 duplicate, 6 error in [\d.]+ s; manifest: .*manifest\.csv$",
                     result.stdout.strip(), re.M), result.stdout
    assert "Traceback" not in result.stderr
    assert "missing.jpg: HTTP 404" in result.stderr  # broken links are logged


def test_rerun_skips_what_is_done_and_tries_the_failures_again(mixed, site):
    listing, out, _, hits = mixed
    result = run_download(str(listing), "--out", str(out), *FAST_FLAGS)
    assert result.returncode == 0, result.stderr
    new = Counter(site.hits)
    new.subtract(hits)
    for path in ("/img/red.jpg", "/img/blue.png", "/noext/green", "/flaky/recovers.jpg?fail=2", "/redirect.jpg"):
        assert new[path] == 0, path
    assert new["/missing.jpg"] == 1 and new["/page.jpg"] == 1
    _, rows = read_manifest(out)
    assert [r["status"] for r in rows].count("exists") == 5
    assert {r["file"] for r in rows if r["status"] == "exists"} == {
        "red.jpg", "my_car_1.png", "green.png", "recovers.jpg", "redirect.jpg"}
    assert rows[-1]["status"] == "duplicate" and rows[-1]["file"] == "red.jpg"
    assert "0 ok, 5 exists, 1 duplicate, 6 error" in result.stdout
    assert folder(out) == ["green.png", "manifest.csv", "my_car_1.png", "recovers.jpg", "red.jpg", "redirect.jpg"]


# --- the library, case by case ----------------------------------------------------------------

def write_list(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_without_a_manifest_present_files_are_verified(site, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.jpg").write_bytes(image_bytes("something else"))  # a good image: taken as downloaded
    (out / "broken.jpg").write_bytes(b"half a file")  # not an image: downloaded again
    listing = write_list(tmp_path / "urls.txt", [f"{site.url}/img/kept.jpg", f"{site.url}/img/broken.jpg"])
    items, _ = read_url_list(listing)
    download_all(items, out, FAST)
    assert [(i.file, i.status) for i in items] == [("kept.jpg", "exists"), ("broken.jpg", "ok")]
    assert site.hits["/img/kept.jpg"] == 0
    assert (out / "broken.jpg").read_bytes() == image_bytes("broken.jpg")


def test_text_list_names_clashes_and_repeats(site, tmp_path):
    u = site.url
    lines = ["# cars", "", f"{u}/img/a/car.jpg", f"  {u}/img/b/car.jpg  ", f"{u}/img/b/car.jpg",
             f"{u}/noext/photo?size=large", "ftp://example.invalid/x.jpg", f"{u}/img/Car.png"]
    items, columns = read_url_list(write_list(tmp_path / "urls.txt", lines))
    assert columns == [] and [i.line for i in items] == [3, 4, 5, 6, 7, 8]
    download_all(items, tmp_path / "out", FAST)
    got = [(i.file, i.status) for i in items]
    a, b, big = (f"{u}/img/a/car.jpg", f"{u}/img/b/car.jpg", f"{u}/img/Car.png")
    assert got == [
        (f"car-{url_hash(a)}.jpg", "ok"), (f"car-{url_hash(b)}.jpg", "ok"), (f"car-{url_hash(b)}.jpg", "duplicate"),
        ("photo.png", "ok"), ("", "error"), (f"Car-{url_hash(big)}.png", "ok"),
    ]
    # the names do not depend on the order of the list
    assert plan_names(list(reversed(items))) == plan_names(items)


def test_filename_column_cannot_leave_the_folder(site, tmp_path):
    u = site.url
    listing = tmp_path / "list.csv"
    listing.write_text("url,filename\n"
                       f"{u}/img/one.jpg,../../evil.jpg\n"
                       f"{u}/img/two.jpg,sub/dir/x.jpg\n"
                       f"{u}/img/three.jpg,..\n"
                       f"{u}/img/four.jpg,/etc/passwd\n", encoding="utf-8")
    items, _ = read_url_list(listing)
    out = tmp_path / "deep" / "out"
    download_all(items, out, FAST)
    assert [i.file for i in items] == ["evil.jpg", "x.jpg", "three.jpg", "passwd.jpg"]
    assert folder(out) == ["evil.jpg", "passwd.jpg", "three.jpg", "x.jpg"]
    assert folder(tmp_path) == ["deep", "list.csv"] and folder(tmp_path / "deep") == ["out"]


@pytest.mark.parametrize(("text", "name"), [
    ("../../evil.jpg", "evil.jpg"), ("a\\b\\c.PNG", "c.png"), ("..", ""), (".hidden", ""), ("", ""),
    ("my car (1).JPG", "my_car_1.jpg"), ("x.tar.gz", "x_tar.gz"), ("x.jpg.partial", "x_jpg.partial"),
    ("-rf.jpg", "rf.jpg"), ("автомобиль.jpg", ""), ("a" * 300 + ".jpg", "a" * 116 + ".jpg"),
])
def test_safe_name(text, name):
    assert safe_name(text) == name


def test_size_and_pixel_limits(site, tmp_path):
    u = site.url
    items, _ = read_url_list(write_list(tmp_path / "urls.txt", [f"{u}/big.jpg", f"{u}/big-stream.jpg"]))
    download_all(items, tmp_path / "out", DownloadConfig(timeout=5, retries=2, backoff=0.01, max_mb=10_000 / 2**20))
    assert [i.status for i in items] == ["error", "error"]
    assert "50000 bytes is over the limit of 10000 bytes" in items[0].error  # from Content-Length, nothing read
    assert "over the limit of 10000 bytes" in items[1].error  # counted while streaming
    assert site.hits["/big.jpg"] == site.hits["/big-stream.jpg"] == 1  # not retried
    assert folder(tmp_path / "out") == []  # no .partial left behind

    items, _ = read_url_list(write_list(tmp_path / "pixels.txt", [f"{u}/img/pixels.jpg"]))
    download_all(items, tmp_path / "px", DownloadConfig(timeout=5, max_pixels=100))
    assert items[0].status == "error" and "24x16 pixels is over the limit of 100" in items[0].error
    assert folder(tmp_path / "px") == []


def test_columns_that_clash_with_the_manifest_are_renamed(site, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text(f"status,URL,file\nreviewed,{site.url}/img/clash.jpg,old.jpg\n", encoding="utf-8")
    items, columns = read_url_list(listing)
    assert columns == ["input_status", "input_file"]
    download_all(items, tmp_path, FAST)
    header, rows = read_manifest(write_manifest(tmp_path, items, columns).parent)
    assert header == ["url", "file", "status", "error", "input_status", "input_file"]
    assert (rows[0]["file"], rows[0]["status"], rows[0]["input_status"], rows[0]["input_file"]) == (
        "clash.jpg", "ok", "reviewed", "old.jpg")


def test_nothing_downloaded_is_exit_1_with_a_manifest(site, tmp_path):
    listing = write_list(tmp_path / "urls.txt", [f"{site.url}/missing.jpg", f"{site.url}/page.jpg"])
    result = run_download(str(listing), "--out", str(tmp_path / "out"), *FAST_FLAGS)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "perspective download: error: no file could be downloaded"
    assert "2 URLs: 0 ok, 0 exists, 0 duplicate, 2 error" in result.stdout
    assert [r["status"] for r in read_manifest(tmp_path / "out")[1]] == ["error", "error"]
    assert folder(tmp_path / "out") == ["manifest.csv"]


def test_ctrl_c_stops_at_once_and_still_writes_the_manifest(site, tmp_path):
    listing = write_list(tmp_path / "urls.txt", [f"{site.url}/stall.jpg", f"{site.url}/slow.jpg"])
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "perspective", "download", str(listing), "--out", str(out), "-q"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_at_default)
    deadline = time.monotonic() + 30
    while not (out / "stall.jpg.partial").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (out / "stall.jpg.partial").exists() and site.hits["/slow.jpg"] >= 1
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - start < 3  # not the 20 s read timeout of the stalled downloads
    assert proc.returncode == 130 and stderr.strip().splitlines()[-1] == "perspective download: interrupted", stderr
    assert folder(out) == ["manifest.csv"]  # the .partial is gone
    assert [(r["status"], r["error"]) for r in read_manifest(out)[1]] == [("error", "interrupted")] * 2


@pytest.mark.parametrize(("content", "flags", "message"), [
    (None, (), "no such file"),
    ("# only a comment\n\n", (), "no http(s) URLs"),
    ("name,label\na.jpg,front\n", (), "no 'url' column (columns: name, label)"),
    ("url,label\n", (), "no http(s) URLs"),
    ("http://127.0.0.1:9/x.jpg\n", ("--workers", "0"), "--workers: must be at least 1"),
    ("http://127.0.0.1:9/x.jpg\n", ("--timeout", "-1"), "--timeout"),
    ("http://127.0.0.1:9/x.jpg\n", ("--max-mb", "inf"), "--max-mb: expected a finite number"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, flags, message):
    listing = tmp_path / ("list.csv" if content and "," in content else "list.txt")
    if content is not None:
        listing.write_text(content, encoding="utf-8")
    result = run_download(str(listing), "--out", str(tmp_path / "out"), *flags)
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_file_that_cannot_be_written_ends_the_run_in_one_line_and_keeps_the_manifest(site, tmp_path):
    out = tmp_path / "out"
    (out / "blocked.jpg.partial").mkdir(parents=True)  # where the download would be written
    listing = write_list(tmp_path / "urls.txt", [f"{site.url}/img/blocked.jpg"])
    result = run_download(str(listing), "--out", str(out), *FAST_FLAGS)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        f"perspective download: error: --out {out}: cannot write blocked.jpg.partial (Is a directory)"]
    assert read_manifest(out)[1][0]["status"] == "error"


def test_waits_between_retries_double_up_to_a_minute(monkeypatch):
    import asyncio

    import perspective.download.fetch as download

    waits = []

    async def always_busy(*args):
        raise download.DownloadError("HTTP 503 Service Unavailable", retry=True)

    async def record(seconds):
        waits.append(seconds)

    monkeypatch.setattr(download, "fetch", always_busy)
    monkeypatch.setattr(download.asyncio, "sleep", record)
    config = DownloadConfig(retries=9, backoff=1.0)
    with pytest.raises(download.DownloadError, match="after 10 attempts"):
        asyncio.run(download.fetch_with_retries(None, "http://x/a.jpg", Path("unused"), config))
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_extensions_are_the_data_modules():
    from perspective.data import IMAGE_EXTENSIONS as DATA_EXTENSIONS

    assert IMAGE_EXTENSIONS is DATA_EXTENSIONS  # one tuple in perspective.config, not two kept equal
