"""Download tests against a local HTTP server on 127.0.0.1 (no internet needed).

The server serves a temporary folder with files copied from ../shared/data, a
truncated file, a file with wrong bytes and zip archives (one with a
``../evil.txt`` member). Special path prefixes make it misbehave:
``/lying/...`` announces more bytes than it sends (a dropped connection) and
``/flaky/...`` answers 503 to the first request.
"""

from __future__ import annotations

import functools
import http.server
import pathlib
import shutil
import socket
import threading
import zipfile

import numpy as np
import pytest

from unet_tutorial import datasets


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test log quiet
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/lying/"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.close_connection = True
            return
        if self.path.startswith("/flaky/"):
            if self.server.failures_left > 0:
                self.server.failures_left -= 1
                self.send_error(503, "try again")
                return
            self.path = self.path[len("/flaky"):]
        super().do_GET()


class _Server:
    def __init__(self, www: pathlib.Path):
        self.www = www
        handler = functools.partial(_Handler, directory=str(www))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free port
        self.httpd.requests = []
        self.httpd.failures_left = 1
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests


@pytest.fixture
def server(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    srv = _Server(www)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def mask_file(shared_data):
    """A small real file and its pinned sha256."""
    relative = "01_GT/SEG/man_seg002.tif"
    return shared_data / "DIC-C2DH-HeLa" / relative, datasets.dataset_info("DIC-C2DH-HeLa").files[relative]


def _all_files(folder: pathlib.Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---------------------------------------------------------------------------
# download_file


@pytest.mark.integration
def test_good_download_is_verified_and_lands(server, mask_file, tmp_path):
    source, sha = mask_file
    shutil.copyfile(source, server.www / "good.tif")
    out = tmp_path / "out"
    path = datasets.download_file(f"{server.url}/good.tif", out / "man_seg002.tif", sha, progress=False)
    assert path == out / "man_seg002.tif"
    assert path.read_bytes() == source.read_bytes()
    assert _all_files(out) == ["man_seg002.tif"]  # no temporary file left next to it


@pytest.mark.integration
def test_wrong_bytes_name_expected_and_found_hash_and_leave_nothing(server, mask_file, tmp_path):
    source, sha = mask_file
    data = bytearray(source.read_bytes())
    data[5000] ^= 0xFF  # same length, one byte different
    (server.www / "wrong.tif").write_bytes(bytes(data))
    found = datasets.file_sha256(server.www / "wrong.tif")
    out = tmp_path / "out"
    with pytest.raises(datasets.ChecksumError) as err:
        datasets.download_file(f"{server.url}/wrong.tif", out / "man_seg002.tif", sha, progress=False)
    message = str(err.value)
    assert "man_seg002.tif" in message and sha in message and found in message
    assert (err.value.expected, err.value.found) == ([sha], found)
    assert out.is_dir() and _all_files(out) == []  # not even a .part file


@pytest.mark.integration
def test_truncated_file_is_an_error(server, mask_file, tmp_path):
    source, sha = mask_file
    (server.www / "short.tif").write_bytes(source.read_bytes()[:3000])
    out = tmp_path / "out"
    with pytest.raises(datasets.ChecksumError, match="short.tif"):
        datasets.download_file(f"{server.url}/short.tif", out / "short.tif", sha, progress=False)
    assert _all_files(out) == []


def test_dropped_connection_is_retried_then_fails_without_leftovers(server, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(datasets.DownloadError, match="lying/big.bin") as err:
        datasets.download_file(f"{server.url}/lying/big.bin", out / "big.bin", "0" * 64, progress=False, retries=2)
    assert isinstance(err.value, OSError)
    assert server.requests == ["/lying/big.bin"] * 2
    assert _all_files(out) == []


def test_temporary_server_error_is_retried(server, tmp_path):
    (server.www / "hello.txt").write_bytes(b"hello\n")
    sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"  # sha256 of b"hello\n"
    path = datasets.download_file(f"{server.url}/flaky/hello.txt", tmp_path / "hello.txt", sha, progress=False)
    assert path.read_bytes() == b"hello\n"
    assert server.requests == ["/flaky/hello.txt"] * 2  # 503 first, then the file


def test_missing_file_is_not_retried(server, tmp_path):
    with pytest.raises(datasets.DownloadError, match="404"):
        datasets.download_file(f"{server.url}/nope.tif", tmp_path / "nope.tif", "0" * 64, progress=False)
    assert server.requests == ["/nope.tif"]
    assert _all_files(tmp_path) == []


def test_progress_bar(server, tmp_path, capsys):
    (server.www / "blob.bin").write_bytes(bytes(200_000))
    datasets.download_file(f"{server.url}/blob.bin", tmp_path / "blob.bin", progress=True)
    assert "100%" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Safe unpacking


def _zip(path: pathlib.Path, members: dict[str, bytes]) -> pathlib.Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("evil", ["../evil.txt", "a/../../evil.txt", "/tmp/evil-abs.txt"])
def test_zip_slip_member_is_refused_and_nothing_written(tmp_path, evil):
    archive = _zip(tmp_path / "bad.zip", {"fine.txt": b"ok", evil: b"pwned"})
    target = tmp_path / "target"
    with pytest.raises(datasets.UnsafeArchiveError, match=evil.replace(".", r"\.")):
        datasets.safe_extract_zip(archive, target)
    assert _all_files(target) == []
    assert not (tmp_path / "evil.txt").exists() and not pathlib.Path("/tmp/evil-abs.txt").exists()


def test_safe_extract_keeps_harmless_dotdot_inside_target(tmp_path):
    archive = _zip(tmp_path / "ok.zip", {"a/b.txt": b"1", "a/c/../d.txt": b"2"})
    datasets.safe_extract_zip(archive, tmp_path / "t")
    assert _all_files(tmp_path / "t") == ["a/b.txt", "a/d.txt"]


def test_zip_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(datasets.UnsafeArchiveError):
        datasets.safe_extract_zip(archive, tmp_path / "t")
    assert not (tmp_path / "t" / "link").exists()


def test_fetch_refuses_zip_slip_archive(server, tmp_path):
    _zip(server.www / "DIC-C2DH-HeLa.zip", {"DIC-C2DH-HeLa/01/t000.tif": b"x", "../evil.txt": b"pwned"})
    root = tmp_path / "cache" / "data"
    with pytest.raises(datasets.UnsafeArchiveError, match=r"\.\./evil\.txt"):
        datasets.fetch("DIC-C2DH-HeLa", data_dir=root, progress=False, base_url=server.url)
    assert _all_files(tmp_path / "cache") == []  # no evil.txt, no zip, no half-unpacked folder
    assert server.requests == ["/DIC-C2DH-HeLa.zip"]


def test_fetch_truncated_zip_is_an_error_and_leaves_nothing(server, tmp_path):
    _zip(server.www / "whole.zip", {f"PhC-C2DH-U373/01/t{i:03d}.tif": bytes(5000) for i in range(20)})
    (server.www / "PhC-C2DH-U373.zip").write_bytes((server.www / "whole.zip").read_bytes()[:40_000])
    root = tmp_path / "data"
    with pytest.raises(ValueError, match="not a zip archive"):
        datasets.fetch("PhC-C2DH-U373", data_dir=root, progress=False, base_url=server.url)
    assert _all_files(root) == []


# ---------------------------------------------------------------------------
# fetch end to end


def _serve_isbi_slices(shared_data: pathlib.Path, www: pathlib.Path) -> None:
    for remote in datasets.dataset_info("isbi2012").sources["github-slices"].files:
        (www / remote.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "isbi2012" / remote.target, www / remote.path)


@pytest.mark.integration
def test_fetch_isbi_slices_builds_verified_stacks(server, shared_data, tmp_path, monkeypatch):
    _serve_isbi_slices(shared_data, server.www)
    monkeypatch.setenv("UNET_TUTORIAL_BASE_URL", server.url)  # the env override, no argument
    root = tmp_path / "data"
    folder = datasets.fetch("isbi2012", data_dir=root, progress=False)
    assert folder == root / "isbi2012"
    assert len(server.requests) == 90
    assert all(r.startswith("/data/membrane/") for r in server.requests)
    ours, reference = datasets.load_isbi2012(data_dir=root), datasets.load_isbi2012(data_dir=shared_data)
    for a, b in zip(ours, reference):
        np.testing.assert_array_equal(a, b)
    assert not [p for p in _all_files(root) if p.endswith(".part")]
    # a second fetch finds the local copy and downloads nothing
    datasets.fetch("isbi2012", data_dir=root, progress=False)
    assert len(server.requests) == 90


@pytest.mark.integration
def test_fetch_isbi_bad_slice_fails_then_resumes(server, shared_data, tmp_path):
    _serve_isbi_slices(shared_data, server.www)
    bad = server.www / "data/membrane/train/label/7.png"
    good_bytes = bad.read_bytes()
    bad.write_bytes(good_bytes[:-100])  # truncated on the server
    root = tmp_path / "data"
    with pytest.raises(datasets.ChecksumError, match="7.png"):
        datasets.fetch("isbi2012", data_dir=root, progress=False, base_url=server.url)
    files = _all_files(root / "isbi2012")
    assert "slices/train-labels/7.png" not in files and not [f for f in files if f.endswith((".part", ".tif"))]
    with pytest.raises(datasets.DatasetNotFoundError):
        datasets.load_isbi2012(data_dir=root)
    bad.write_bytes(good_bytes)  # the server is fixed: only what is missing is downloaded
    before = len(server.requests)
    datasets.fetch("isbi2012", data_dir=root, progress=False, base_url=server.url)
    assert len(server.requests) - before == 90 - len(files)
    assert datasets.load_isbi2012(data_dir=root).labels.shape == (30, 512, 512)


def _serve_ctc_zip(shared_data: pathlib.Path, www: pathlib.Path, name: str, replace: dict | None = None) -> None:
    with zipfile.ZipFile(www / f"{name}.zip", "w", zipfile.ZIP_STORED) as zf:
        for relative in datasets.dataset_info(name).files:
            data = (replace or {}).get(relative) or (shared_data / name / relative).read_bytes()
            zf.writestr(f"{name}/{relative}", data)


@pytest.mark.integration
def test_fetch_ctc_zip_unpacks_and_loads(server, shared_data, tmp_path):
    _serve_ctc_zip(shared_data, server.www, "DIC-C2DH-HeLa")
    root = tmp_path / "data"
    folder = datasets.fetch("DIC-C2DH-HeLa", data_dir=root, progress=False, base_url=server.url)
    assert folder == root / "DIC-C2DH-HeLa"
    assert [p.name for p in root.iterdir()] == ["DIC-C2DH-HeLa"]  # zip and staging folder gone
    data = datasets.load_ctc("DIC-C2DH-HeLa", "02", data_dir=root)
    assert data.frame_numbers == (6, 7, 14, 27, 34, 38, 42, 61, 67)


@pytest.mark.integration
def test_fetch_ctc_zip_with_corrupted_member(server, shared_data, tmp_path):
    relative = "02/t040.tif"
    broken = bytearray((shared_data / "DIC-C2DH-HeLa" / relative).read_bytes())
    broken[-10] ^= 0xFF
    _serve_ctc_zip(shared_data, server.www, "DIC-C2DH-HeLa", {relative: bytes(broken)})
    expected = datasets.dataset_info("DIC-C2DH-HeLa").files[relative]
    root = tmp_path / "data"
    with pytest.raises(datasets.ChecksumError) as err:
        datasets.fetch("DIC-C2DH-HeLa", data_dir=root, progress=False, base_url=server.url)
    assert relative in str(err.value) and expected in str(err.value)
    assert __import__("hashlib").sha256(bytes(broken)).hexdigest() in str(err.value)
    assert _all_files(root) == []


# ---------------------------------------------------------------------------
# A local mirror never touches the network


@pytest.mark.integration
def test_fetch_from_local_mirror_does_not_touch_the_network(shared_data, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("fetch tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("UNET_TUTORIAL_BASE_URL", "http://127.0.0.1:9")
    for name in datasets.manifest():
        assert datasets.fetch(name, data_dir=shared_data, progress=False) == shared_data / name
    monkeypatch.setenv("UNET_TUTORIAL_DATA", str(shared_data))
    assert datasets.fetch("isbi2012") == shared_data / "isbi2012"


@pytest.mark.integration
def test_fetch_isbi_from_imagej_zip_with_other_container_bytes(server, shared_data, tmp_path):
    import io

    import tifffile

    members = {}
    for name in ("train-volume.tif", "train-labels.tif", "test-volume.tif"):
        buffer = io.BytesIO()  # re-encoded: other bytes than ours, same pixels
        tifffile.imwrite(buffer, tifffile.imread(shared_data / "isbi2012" / name), compression="zlib")
        members[f"ISBI-2012-challenge/{name}"] = buffer.getvalue()
    members["ISBI-2012-challenge/challenge-error-metrics.bsh"] = b"// not needed\n"
    _zip(server.www / "ISBI-2012-challenge.zip", members)
    root = tmp_path / "data"
    datasets.fetch("isbi2012", data_dir=root, progress=False, source="imagej-zip", base_url=server.url)
    assert server.requests == ["/ISBI-2012-challenge.zip"]
    assert _all_files(root) == ["isbi2012/test-volume.tif", "isbi2012/train-labels.tif", "isbi2012/train-volume.tif"]
    np.testing.assert_array_equal(
        datasets.load_isbi2012(data_dir=root).labels, datasets.load_isbi2012(data_dir=shared_data).labels
    )
