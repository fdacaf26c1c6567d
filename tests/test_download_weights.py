"""scripts/download_weights.py, offline: a fake hub stands in for huggingface_hub."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import constants
from huggingface_hub.errors import GatedRepoError
from huggingface_hub.hf_api import RepoFile

from diarization.weights import WeightsLayout

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "download_weights.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("download_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


dw = _load_script()

SEG = "pyannote-segmentation"
ECAPA = "speechbrain-spkrec-ecapa-voxceleb"
#: Every file, relative to the weights root, with the fake content the fake hub serves.
CONTENT = {
    f"{SEG}/pytorch_model.bin": b"segmentation weights\x00\x01",
    f"{ECAPA}/hyperparams.yaml": b"pretrained_path: x\n",
    f"{ECAPA}/embedding_model.ckpt": b"ecapa weights\x00\x02",
    f"{ECAPA}/mean_var_norm_emb.ckpt": b"norm\x00\x03",
    f"{ECAPA}/classifier.ckpt": b"classifier\x00\x04",
    f"{ECAPA}/label_encoder.txt": b"'id10001' => 0\n",
}
#: Files stored in git rather than LFS: the hub gives only their git blob id.
GIT_FILES = {f"{ECAPA}/hyperparams.yaml", f"{ECAPA}/label_encoder.txt"}
FOLDERS = {"pyannote/segmentation": SEG, "speechbrain/spkrec-ecapa-voxceleb": ECAPA}


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


class FakeHub:
    """Serves CONTENT at the pinned revisions only, and records every call."""

    def __init__(self):
        self.revisions = {m.repo_id: m.revision for m in dw.MODELS}
        self.served = dict(CONTENT)  # what downloads return; tests corrupt entries
        self.download_errors: dict[str, Exception] = {}  # repo id -> raised on download
        self.info_calls: list[tuple[str, str, str | None]] = []
        self.downloads: list[str] = []
        self.staging_folders: list[str] = []
        self.root = Path("/")  # the weights folder, set by the `hub` fixture

    def paths_info(self, repo_id, paths, revision, token):
        self.info_calls.append((repo_id, revision, token))
        if self.revisions.get(repo_id) != revision:
            return []
        infos = []
        for name in paths:
            data = CONTENT[f"{FOLDERS[repo_id]}/{name}"]
            if f"{FOLDERS[repo_id]}/{name}" in GIT_FILES:
                infos.append(RepoFile(path=name, size=len(data), oid=git_sha1(data)))
            else:
                pointer = f"version https://git-lfs.github.com/spec/v1\nsize {len(data)}\n"
                lfs = {"size": len(data), "oid": hashlib.sha256(data).hexdigest(), "pointerSize": 1}
                infos.append(
                    RepoFile(path=name, size=len(data), oid=git_sha1(pointer.encode()), lfs=lfs)
                )
        return infos

    def download(self, repo_id, filename, revision, token, local_dir):
        assert revision == self.revisions[repo_id] and token == "hf_test"
        if repo_id in self.download_errors:
            raise self.download_errors[repo_id]
        relative = f"{FOLDERS[repo_id]}/{filename}"
        self.downloads.append(relative)
        # A staging folder beside the final file: same filesystem, so the rename is atomic.
        self.staging_folders.append(local_dir.relative_to(self.root).as_posix())
        (local_dir / ".cache" / "huggingface").mkdir(parents=True)  # as hf_hub_download does
        path = local_dir / filename
        path.write_bytes(self.served[relative])
        return path


def _no_network(*args, **kwargs):
    raise AssertionError("the hub was contacted")


@pytest.fixture
def hub(monkeypatch, tmp_path):
    fake = FakeHub()
    fake.root = tmp_path
    monkeypatch.setattr(dw, "hub_paths_info", fake.paths_info)
    monkeypatch.setattr(dw, "hub_download", fake.download)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # even under HF_HUB_OFFLINE=1 pytest
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.delenv("DIARIZATION_WEIGHTS_DIR", raising=False)
    return fake


@pytest.fixture
def offline(monkeypatch):
    """Any hub call fails the test."""
    monkeypatch.setattr(dw, "hub_paths_info", _no_network)
    monkeypatch.setattr(dw, "hub_download", _no_network)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("DIARIZATION_WEIGHTS_DIR", raising=False)


@pytest.fixture
def fetched(hub, tmp_path):
    """A weights folder after one successful run."""
    assert dw.main(["--dest", str(tmp_path)]) == 0
    hub.info_calls.clear()
    hub.downloads.clear()
    return tmp_path


def leftovers(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(f"{dw.STAGING_PREFIX}*"))


def test_layout_matches_the_package():
    expected = WeightsLayout(Path("/w")).required_files()
    assert [Path("/w", rel) for m in dw.MODELS for rel in m.relative_paths()] == expected
    assert [Path("/w", rel) for rel in CONTENT] == expected
    assert dw.SEGMENTATION.revision == "2022.07"
    assert dw.ECAPA.revision == "5c0be3875fda05e81f3c004ed8c7c06be308de1e"


def test_first_run_writes_the_layout_and_records(hub, tmp_path, capsys):
    assert dw.main(["--dest", str(tmp_path)]) == 0

    for relative, data in CONTENT.items():
        assert (tmp_path / relative).read_bytes() == data
    assert WeightsLayout(tmp_path).is_complete()
    assert hub.downloads == list(CONTENT)
    assert [f.partition("/")[0] for f in hub.staging_folders] == [SEG] + [ECAPA] * 5
    assert all(f.partition("/")[2].startswith(".download-") for f in hub.staging_folders)
    assert hub.info_calls == [
        ("pyannote/segmentation", "2022.07", "hf_test"),
        (
            "speechbrain/spkrec-ecapa-voxceleb",
            "5c0be3875fda05e81f3c004ed8c7c06be308de1e",
            "hf_test",
        ),
    ]
    assert (tmp_path / "SHA256SUMS").read_text() == "".join(
        f"{hashlib.sha256(data).hexdigest()}  {relative}\n" for relative, data in CONTENT.items()
    )
    assert (tmp_path / "REVISIONS").read_text().splitlines()[1:] == [
        "pyannote/segmentation 2022.07",
        "speechbrain/spkrec-ecapa-voxceleb 5c0be3875fda05e81f3c004ed8c7c06be308de1e",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [ECAPA, SEG, "REVISIONS", "SHA256SUMS"]
    )
    assert leftovers(tmp_path) == []
    assert "done: 6 downloaded, 0 already present" in capsys.readouterr().out


def test_second_run_downloads_nothing_and_needs_no_token(fetched, offline, capsys):
    assert dw.main(["--dest", str(fetched)]) == 0
    assert "done: 0 downloaded, 6 already present" in capsys.readouterr().out


def test_only_a_missing_or_damaged_file_is_downloaded_again(fetched, hub):
    (fetched / f"{ECAPA}/classifier.ckpt").unlink()
    (fetched / f"{SEG}/pytorch_model.bin").write_bytes(b"truncated")
    result = dw.fetch_weights(fetched, "hf_test")
    assert result.downloaded == [f"{SEG}/pytorch_model.bin", f"{ECAPA}/classifier.ckpt"]
    assert hub.downloads == result.downloaded
    assert len(result.kept) == 4
    assert dw.check_folder(fetched) == []


@pytest.mark.parametrize(
    ("relative", "digest_kind"),
    [(f"{ECAPA}/embedding_model.ckpt", "sha256"), (f"{ECAPA}/label_encoder.txt", "git blob sha1")],
)
def test_checksum_mismatch_fails_naming_the_file_and_keeps_nothing(
    hub, tmp_path, capsys, relative, digest_kind
):
    corrupt = bytearray(CONTENT[relative])
    corrupt[0] ^= 0xFF  # same size, different content
    hub.served[relative] = bytes(corrupt)

    assert dw.main(["--dest", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert f"checksum mismatch for {relative} from speechbrain/spkrec-ecapa-voxceleb@" in err
    assert f"{digest_kind} " in err
    assert not (tmp_path / relative).exists()
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "SHA256SUMS").exists()
    assert not (tmp_path / "REVISIONS").exists()


def test_wrong_size_is_a_mismatch(hub, tmp_path, capsys):
    hub.served[f"{SEG}/pytorch_model.bin"] = b"short"
    assert dw.main(["--dest", str(tmp_path)]) == 1
    assert "size 5 bytes, expected 22" in capsys.readouterr().err
    assert not (tmp_path / SEG / "pytorch_model.bin").exists()


def test_missing_token_fails_before_any_network_call(offline, tmp_path, capsys):
    assert dw.main(["--dest", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Hugging Face token")
    assert "https://huggingface.co/pyannote/segmentation" in err
    assert "https://huggingface.co/settings/tokens" in err
    assert "HF_TOKEN=hf_xxx python scripts/download_weights.py" in err
    assert list(tmp_path.iterdir()) == []


def test_token_option_is_used(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    assert dw.main(["--dest", str(tmp_path), "--token", "hf_test"]) == 0
    assert {token for _, _, token in hub.info_calls} == {"hf_test"}


def test_gated_refusal_says_to_accept_the_conditions(hub, tmp_path, capsys):
    request = httpx2.Request("GET", "https://huggingface.co/pyannote/segmentation/resolve/x")
    response = httpx2.Response(403, request=request)
    hub.download_errors["pyannote/segmentation"] = GatedRepoError("403", response=response)

    assert dw.main(["--dest", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "refused access to pyannote/segmentation@2022.07 (pytorch_model.bin, HTTP 403)" in err
    assert "accept the model's conditions at https://huggingface.co/pyannote/segmentation" in err
    assert not (tmp_path / SEG / "pytorch_model.bin").exists()


def test_unreachable_hub_says_so(hub, tmp_path, monkeypatch, capsys):
    def unreachable(*args, **kwargs):
        raise httpx2.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(dw, "hub_paths_info", unreachable)
    assert dw.main(["--dest", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "could not reach the Hugging Face hub (https://huggingface.co)" in err
    assert "Temporary failure in name resolution" in err


def test_offline_mode_fails_before_any_network_call(offline, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert dw.main(["--dest", str(tmp_path), "--token", "hf_test"]) == 1
    assert capsys.readouterr().err == "error: HF_HUB_OFFLINE is set; unset it for this command\n"


def test_unknown_revision_fails_naming_the_file(hub, tmp_path, capsys):
    hub.revisions["pyannote/segmentation"] = "other"
    assert dw.main(["--dest", str(tmp_path)]) == 1
    assert "pyannote/segmentation@2022.07 has no file pytorch_model.bin" in capsys.readouterr().err


def test_check_passes_on_a_fetched_folder(fetched, offline, capsys):
    assert dw.main(["--check", "--dest", str(fetched)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_check_names_modified_and_missing_files(fetched, offline, capsys):
    (fetched / f"{ECAPA}/hyperparams.yaml").write_bytes(b"pretrained_path: y\n")
    (fetched / f"{SEG}/pytorch_model.bin").unlink()

    assert dw.main(["--check", "--dest", str(fetched)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[1:] == [
        f"  {SEG}/pytorch_model.bin: missing",
        f"  {ECAPA}/hyperparams.yaml: sha256 "
        f"{hashlib.sha256(b'pretrained_path: y' + bytes([10])).hexdigest()}, SHA256SUMS says "
        f"{hashlib.sha256(CONTENT[f'{ECAPA}/hyperparams.yaml']).hexdigest()}",
    ]


def test_check_flags_a_revision_that_is_not_the_pinned_one(fetched, offline, capsys):
    revisions = fetched / "REVISIONS"
    revisions.write_text(revisions.read_text().replace("2022.07", "2021.01"))
    assert dw.main(["--check", "--dest", str(fetched)]) == 1
    assert (
        "REVISIONS: pyannote/segmentation is at 2021.01, this script pins 2022.07"
        in capsys.readouterr().err
    )


def test_check_without_records_fails(offline, tmp_path, capsys):
    assert dw.main(["--check", "--dest", str(tmp_path)]) == 1
    assert f"{tmp_path / 'SHA256SUMS'} is missing" in capsys.readouterr().err


def test_weights_dir_variable_is_the_default_destination(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("DIARIZATION_WEIGHTS_DIR", str(tmp_path / "w"))
    assert dw.main([]) == 0
    assert WeightsLayout(tmp_path / "w").is_complete()


def test_usage_error_exits_2(offline):
    with pytest.raises(SystemExit) as exit_info:
        dw.main(["--bogus"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("data", "blob_id"),
    [
        (b"", "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"),  # `git hash-object` of empty file
        (b"hello\n", "ce013625030ba8dba906f756967f9e9ca394464a"),
    ],
)
def test_git_blob_sha1(tmp_path, data, blob_id):
    path = tmp_path / "f"
    path.write_bytes(data)
    assert dw.git_blob_sha1_of(path) == blob_id


def test_hub_functions_pass_the_pinned_revision_and_token(monkeypatch, tmp_path):
    calls = {}

    class FakeApi:
        def get_paths_info(self, repo_id, paths, **kwargs):
            calls["info"] = (repo_id, paths, kwargs)
            return []

    def fake_download(repo_id, filename, **kwargs):
        calls["download"] = (repo_id, filename, kwargs)
        return str(tmp_path / filename)

    monkeypatch.setattr(dw, "HfApi", FakeApi)
    monkeypatch.setattr(dw, "hf_hub_download", fake_download)
    dw.hub_paths_info("o/r", ["a"], "rev", "tok")
    assert dw.hub_download("o/r", "a", "rev", "tok", tmp_path) == tmp_path / "a"
    assert calls["info"] == ("o/r", ["a"], {"revision": "rev", "expand": True, "token": "tok"})
    assert calls["download"] == (
        "o/r",
        "a",
        {"revision": "rev", "token": "tok", "local_dir": str(tmp_path)},
    )


class _HubHandler(BaseHTTPRequestHandler):
    """The two hub endpoints the script uses, serving CONTENT; the gated repo wants hf_good."""

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self):  # /api/models/<owner>/<name>/paths-info/<revision>
        _, _, _, owner, name, _, revision = urllib.parse.unquote(self.path).split("/")
        form = self.rfile.read(int(self.headers["Content-Length"])).decode()
        paths = urllib.parse.parse_qs(form)["paths"]
        hub = FakeHub()
        infos = hub.paths_info(f"{owner}/{name}", paths, revision, None)
        entries = [
            {"type": "file", "path": i.path, "size": i.size, "oid": i.blob_id}
            | ({"lfs": {"size": i.size, "oid": i.lfs.sha256, "pointerSize": 1}} if i.lfs else {})
            for i in infos
        ]
        self._send(200, json.dumps(entries).encode(), Content_Type="application/json")

    def do_HEAD(self):  # /<owner>/<name>/resolve/<revision>/<file>
        _, owner, name, _, revision, filename = urllib.parse.unquote(self.path).split("/")
        if owner == "pyannote" and self.headers.get("Authorization") != "Bearer hf_good":
            self._send(403, X_Error_Code="GatedRepo")
            return
        data = CONTENT[f"{FOLDERS[f'{owner}/{name}']}/{filename}"]
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        self._send(200, data, X_Repo_Commit="a" * 40, ETag=etag)

    do_GET = do_HEAD


@pytest.fixture
def local_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("token", "status"), [("hf_good", 0), ("hf_refused", 1)])
def test_real_hub_client_against_a_local_hub(
    local_hub, tmp_path, monkeypatch, capsys, token, status
):
    """The unpatched hub functions, with huggingface_hub pointed at a local server."""
    # What HF_ENDPOINT sets when huggingface_hub is imported; HfApi() and hf_hub_url read these.
    monkeypatch.setattr(constants, "ENDPOINT", local_hub)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        local_hub + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    dest = tmp_path / "weights"

    assert dw.main(["--dest", str(dest), "--token", token]) == status

    if status == 0:
        for relative, data in CONTENT.items():
            assert (dest / relative).read_bytes() == data
        assert dw.check_folder(dest) == []
    else:
        err = capsys.readouterr().err
        assert "(pytorch_model.bin, HTTP 403)" in err
        assert (
            "accept the model's conditions at https://huggingface.co/pyannote/segmentation" in err
        )
        assert not (dest / SEG / "pytorch_model.bin").exists()
    assert leftovers(dest) == []


def test_runs_as_a_command(tmp_path):
    """`python scripts/download_weights.py` finds the package and returns its exit status."""
    env = {"PATH": os.environ.get("PATH", ""), "HF_HOME": str(tmp_path / "hf-home")}
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--dest", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert f"{tmp_path / 'SHA256SUMS'} is missing" in run.stderr
