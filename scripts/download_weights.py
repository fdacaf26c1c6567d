"""Fetch the seed pipeline's pretrained weights from the Hugging Face hub, verified.

Downloads two models at pinned revisions into the layout `diarization.weights` reads:

    pyannote-segmentation/pytorch_model.bin            pyannote/segmentation@2022.07 (gated)
    speechbrain-spkrec-ecapa-voxceleb/*                speechbrain/spkrec-ecapa-voxceleb@5c0be38

Every file is checked against the checksum the hub publishes for that revision (sha256
for LFS files, the git blob sha1 for small files) before it gets its final name, and a
successful run writes `SHA256SUMS` and `REVISIONS` next to the weights. Files that are
already present and verified are not downloaded again; when the whole folder already
matches `SHA256SUMS` and the pinned revisions, the script makes no network call at all.

Usage:

    HF_TOKEN=hf_xxx python scripts/download_weights.py [--dest DIR]
    python scripts/download_weights.py --check [--dest DIR]

The folder is `--dest`, else $DIARIZATION_WEIGHTS_DIR, else the project's `weights/`.
pyannote/segmentation is gated: the token (HF_TOKEN, or `--token`) must belong to an
account that accepted the model's conditions at https://huggingface.co/pyannote/segmentation.
`--check` verifies the folder against `SHA256SUMS` offline.

Exit status: 0 success, 1 failure (download, checksum or check), 2 usage error
(bad arguments, no token).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file, the script sees scripts/, not the package
    sys.path.insert(0, str(ROOT))

from diarization.weights import (  # noqa: E402
    DEFAULT_WEIGHTS_DIR,
    ECAPA_FILES,
    FETCH_COMMAND,
    SEGMENTATION_FILE,
    WEIGHTS_DIR_ENV,
    WeightsLayout,
)

#: pyannote/segmentation revision: the tag pyannote/speaker-diarization@2.1 loads.
#: Tags can be moved; a 40-character commit sha of the same repo can be pinned instead.
SEGMENTATION_REVISION = "2022.07"
#: speechbrain/spkrec-ecapa-voxceleb revision: the commit pyannote.audio 3.x pins.
ECAPA_REVISION = "5c0be3875fda05e81f3c004ed8c7c06be308de1e"

TOKEN_ENV = "HF_TOKEN"
SUMS_FILE = "SHA256SUMS"
REVISIONS_FILE = "REVISIONS"
HUB_URL = "https://huggingface.co"
TOKENS_URL = f"{HUB_URL}/settings/tokens"
STAGING_PREFIX = ".download-"


@dataclass(frozen=True)
class ModelSpec:
    """One hub repository and the files taken from it.

    Attributes:
        repo_id: hub repository, `owner/name`.
        revision: tag, branch or commit sha that every file is taken at.
        folder: folder under the weights root, relative (from `WeightsLayout`).
        files: file names, the same in the repository and in `folder`.
        gated: whether the hub asks users to accept conditions before downloading.
    """

    repo_id: str
    revision: str
    folder: str
    files: tuple[str, ...]
    gated: bool = False

    @property
    def page(self) -> str:
        """The model's page on the hub (where gated conditions are accepted)."""
        return f"{HUB_URL}/{self.repo_id}"

    @property
    def pinned(self) -> str:
        """`repo_id@revision`, as quoted in messages."""
        return f"{self.repo_id}@{self.revision}"

    def relative_paths(self) -> list[str]:
        """Paths of the files relative to the weights root, POSIX style."""
        return [f"{self.folder}/{name}" for name in self.files]


_RELATIVE = WeightsLayout(Path())
SEGMENTATION = ModelSpec(
    repo_id="pyannote/segmentation",
    revision=SEGMENTATION_REVISION,
    folder=_RELATIVE.segmentation.parent.as_posix(),
    files=(SEGMENTATION_FILE,),
    gated=True,
)
ECAPA = ModelSpec(
    repo_id="speechbrain/spkrec-ecapa-voxceleb",
    revision=ECAPA_REVISION,
    folder=_RELATIVE.embedding.as_posix(),
    files=ECAPA_FILES,
)
MODELS = (SEGMENTATION, ECAPA)


class FetchError(RuntimeError):
    """Fetching or verifying the weights failed; the message names the file and the fix."""


class TokenMissingError(FetchError):
    """No Hugging Face token was given, and something has to be fetched."""


@dataclass(frozen=True)
class ExpectedFile:
    """What the hub says one file is at the pinned revision.

    Attributes:
        name: file name in the repository.
        size: size in bytes.
        git_sha1: git blob id (sha1 of `blob <size>\\0` + content, or of the LFS pointer).
        sha256: sha256 of the content, for LFS files; None for files stored in git.
    """

    name: str
    size: int
    git_sha1: str
    sha256: str | None = None


@dataclass
class FetchResult:
    """What a fetch did, as paths relative to the weights root.

    Attributes:
        downloaded: files downloaded and verified by this run.
        kept: files already present and verified, left as they were.
    """

    downloaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


# --- The hub: the only two functions that touch the network (tests replace them). ---


def hub_paths_info(repo_id: str, paths: list[str], revision: str, token: str | None) -> list:
    """The hub's metadata (`RepoFile`s) for `paths` at `revision`; absent paths are omitted."""
    return HfApi().get_paths_info(repo_id, paths, revision=revision, expand=True, token=token)


def hub_download(
    repo_id: str, filename: str, revision: str, token: str | None, local_dir: Path
) -> Path:
    """Download one file of `repo_id` at `revision` to `local_dir/filename`; return its path."""
    return Path(
        hf_hub_download(repo_id, filename, revision=revision, token=token, local_dir=str(local_dir))
    )


# --- Checksums and the record files. ---


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's content."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def git_blob_sha1_of(path: Path) -> str:
    """Hex git blob id of a file: sha1 of `blob <size>\\0` followed by the content."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_mismatch(path: Path, expected: ExpectedFile) -> str | None:
    """Why `path` is not the file the hub describes, or None when it is."""
    size = path.stat().st_size
    if size != expected.size:
        return f"size {size} bytes, expected {expected.size}"
    if expected.sha256 is not None:
        actual = sha256_of(path)
        if actual != expected.sha256:
            return f"sha256 {actual}, expected {expected.sha256}"
        return None
    actual = git_blob_sha1_of(path)
    if actual != expected.git_sha1:
        return f"git blob sha1 {actual}, expected {expected.git_sha1}"
    return None


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f"{STAGING_PREFIX}{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_sums(root: Path) -> dict[str, str]:
    """`SHA256SUMS` of a weights folder as {relative path: sha256}; empty when absent."""
    path = root / SUMS_FILE
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        digest, sep, relative = line.partition("  ")
        if sep and relative:
            sums[relative] = digest
    return sums


def write_sums(root: Path, sums: dict[str, str]) -> None:
    """Write `SHA256SUMS` in `sha256sum` format (so `sha256sum -c SHA256SUMS` works)."""
    _write_atomically(root / SUMS_FILE, "".join(f"{d}  {rel}\n" for rel, d in sums.items()))


def read_revisions(root: Path) -> dict[str, str]:
    """`REVISIONS` of a weights folder as {repo id: revision}; empty when absent."""
    path = root / REVISIONS_FILE
    if not path.is_file():
        return {}
    pairs = (line.split() for line in path.read_text().splitlines() if not line.startswith("#"))
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def write_revisions(root: Path, models: Iterable[ModelSpec] = MODELS) -> None:
    """Write `REVISIONS`: one `repo_id revision` line per model."""
    lines = ["# repo_id revision (written by scripts/download_weights.py)\n"]
    lines += [f"{m.repo_id} {m.revision}\n" for m in models]
    _write_atomically(root / REVISIONS_FILE, "".join(lines))


def check_folder(root: Path, models: Iterable[ModelSpec] = MODELS) -> list[str]:
    """Verify a weights folder offline against its `SHA256SUMS` and the pinned revisions.

    Args:
        root: the weights folder.
        models: the models the folder must hold.

    Returns:
        One line per problem (missing, unlisted or mismatching file, revision that differs
        from the pin); empty when the folder is complete and intact.
    """
    models = list(models)
    sums = read_sums(root)
    if not sums:
        return [f"{root / SUMS_FILE} is missing; fetch the weights with `{FETCH_COMMAND}`"]
    problems = []
    for relative in (rel for m in models for rel in m.relative_paths()):
        if relative not in sums:
            problems.append(f"{relative}: not listed in {SUMS_FILE}")
    for relative, digest in sums.items():
        path = root / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
        elif (actual := sha256_of(path)) != digest:
            problems.append(f"{relative}: sha256 {actual}, {SUMS_FILE} says {digest}")
    revisions = read_revisions(root)
    for m in models:
        recorded = revisions.get(m.repo_id)
        if recorded != m.revision:
            problems.append(
                f"{REVISIONS_FILE}: {m.repo_id} is at {recorded or 'an unrecorded revision'}, "
                f"this script pins {m.revision}"
            )
    return problems


# --- Fetching. ---


_NETWORK_ERRORS = (httpx2.TransportError, LocalEntryNotFoundError, ConnectionError, TimeoutError)
HUB_ERRORS = (HfHubHTTPError, OfflineModeIsEnabled) + _NETWORK_ERRORS


def explain_hub_error(error: Exception, model: ModelSpec, what: str) -> FetchError:
    """A `FetchError` that says what went wrong talking to the hub and what to do about it.

    Args:
        error: the exception raised by `huggingface_hub` or its HTTP client.
        model: the model being fetched.
        what: what was being fetched, for the message (a file name, "metadata").
    """
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(error, GatedRepoError) or status in (401, 403):
        return FetchError(
            f"the hub refused access to {model.pinned} ({what}, HTTP {status}): "
            f"log in at {HUB_URL} with the account that owns the token, accept the model's "
            f"conditions at {model.page}, and check that the token is valid ({TOKENS_URL})"
        )
    if isinstance(error, RevisionNotFoundError):
        return FetchError(f"revision {model.revision} does not exist in {model.repo_id}")
    if isinstance(error, RepositoryNotFoundError):
        return FetchError(f"{model.repo_id} was not found on the hub ({model.page})")
    if isinstance(error, RemoteEntryNotFoundError):
        return FetchError(f"{what} does not exist in {model.pinned}")
    if isinstance(error, OfflineModeIsEnabled):
        return FetchError("HF_HUB_OFFLINE is set; unset it for this command")
    if isinstance(error, _NETWORK_ERRORS):
        return FetchError(
            f"could not reach the Hugging Face hub ({HUB_URL}) to fetch {what} of "
            f"{model.pinned}: {error}; check the network connection and any proxy settings"
        )
    return FetchError(f"the hub failed to serve {what} of {model.pinned}: {error}")


def expected_files(model: ModelSpec, token: str | None) -> dict[str, ExpectedFile]:
    """The hub's size and checksum of every file of `model` at its pinned revision.

    Raises:
        FetchError: the hub could not be asked, or it does not list one of the files.
    """
    try:
        infos = hub_paths_info(model.repo_id, list(model.files), model.revision, token)
    except HUB_ERRORS as e:
        raise explain_hub_error(e, model, "file metadata") from e
    expected = {}
    for info in infos:
        if not hasattr(info, "blob_id"):  # a RepoFolder
            continue
        lfs = getattr(info, "lfs", None)
        expected[info.path] = ExpectedFile(
            name=info.path,
            size=info.size,
            git_sha1=info.blob_id,
            sha256=lfs.sha256 if lfs is not None else None,
        )
    absent = [name for name in model.files if name not in expected]
    if absent:
        raise FetchError(f"{model.pinned} has no file {absent[0]}; is the revision right?")
    return expected


def download_verified(
    model: ModelSpec, expected: ExpectedFile, target: Path, token: str | None
) -> None:
    """Download one file into a staging folder next to `target`, verify it, move it in place.

    Nothing ever has the final name unless it matched the hub's checksum.

    Raises:
        FetchError: the download failed or its content does not match `expected`; a
            mismatching download is deleted.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target.parent))
    try:
        try:
            downloaded = hub_download(
                model.repo_id, expected.name, model.revision, token, local_dir=staging
            )
        except HUB_ERRORS as e:
            raise explain_hub_error(e, model, expected.name) from e
        mismatch = describe_mismatch(downloaded, expected)
        if mismatch is not None:
            downloaded.unlink()
            raise FetchError(
                f"checksum mismatch for {model.folder}/{expected.name} from {model.pinned}: "
                f"{mismatch}; the download was deleted"
            )
        os.replace(downloaded, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_weights(
    root: Path,
    token: str | None,
    models: Iterable[ModelSpec] = MODELS,
    report: Callable[[str], None] = lambda line: None,
) -> FetchResult:
    """Make `root` hold every model file at its pinned revision, verified.

    When the folder already matches its `SHA256SUMS` and the pinned revisions, nothing is
    fetched and the hub is not contacted. Otherwise a token is required, the hub's
    checksums are fetched, present files that match them are kept, the others are
    downloaded, and `SHA256SUMS` and `REVISIONS` are rewritten.

    Args:
        root: the weights folder (created if needed).
        token: Hugging Face access token.
        models: the models to fetch.
        report: called with each progress line (one per model and one per file).

    Returns:
        Which files were downloaded and which were kept.

    Raises:
        TokenMissingError: there is something to fetch and no token.
        FetchError: the hub could not be reached or refused, or a checksum did not match.
    """
    models = list(models)
    relatives = [rel for m in models for rel in m.relative_paths()]
    if not check_folder(root, models):
        for relative in relatives:
            report(f"ok      {relative}")
        return FetchResult(kept=relatives)
    if not token:
        accept = "".join(
            f"accept the conditions of the gated model {m.repo_id} at {m.page} "
            "with the same account, "
            for m in models
            if m.gated
        )
        raise TokenMissingError(
            f"no Hugging Face token: create a read token at {TOKENS_URL}, {accept}"
            f"then run `{TOKEN_ENV}=hf_xxx python scripts/download_weights.py` (or pass --token)"
        )
    if constants.HF_HUB_OFFLINE:
        raise FetchError("HF_HUB_OFFLINE is set; unset it for this command")

    root.mkdir(parents=True, exist_ok=True)
    result = FetchResult()
    for model in models:
        report(f"hub     {model.pinned}")
        expected = expected_files(model, token)
        for name, relative in zip(model.files, model.relative_paths(), strict=True):
            target = root / relative
            if target.is_file() and describe_mismatch(target, expected[name]) is None:
                report(f"ok      {relative}")
                result.kept.append(relative)
                continue
            report(f"fetch   {relative}")
            download_verified(model, expected[name], target, token)
            result.downloaded.append(relative)
    write_sums(root, {relative: sha256_of(root / relative) for relative in relatives})
    write_revisions(root, models)
    return result


# --- Command line. ---


def resolve_root(dest: Path | None) -> Path:
    """The weights folder: `dest`, else $DIARIZATION_WEIGHTS_DIR, else the project's `weights/`."""
    if dest is not None:
        return dest
    return Path(os.environ.get(WEIGHTS_DIR_ENV) or DEFAULT_WEIGHTS_DIR)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (argparse exits with status 2 on a usage error)."""
    parser = argparse.ArgumentParser(
        prog="python scripts/download_weights.py",
        description="Fetch the pinned, checksum-verified weights of both models.",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        help=f"weights folder (default: ${WEIGHTS_DIR_ENV}, else {DEFAULT_WEIGHTS_DIR})",
    )
    parser.add_argument(
        "--token", help=f"Hugging Face token (default: ${TOKEN_ENV}; prefer the variable)"
    )
    parser.add_argument(
        "--check", action="store_true", help=f"verify the folder against {SUMS_FILE}, offline"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = parse_args(argv)
    root = resolve_root(args.dest)
    if args.check:
        problems = check_folder(root)
        if problems:
            print(f"error: {root} does not match the pinned weights:", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            return 1
        print(f"ok: every file in {root} matches {SUMS_FILE} and the pinned revisions")
        return 0

    token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        result = fetch_weights(root, token, report=print)
    except TokenMissingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # writing the folder: permissions, disk full
        print(f"error: could not write the weights in {root}: {e}", file=sys.stderr)
        return 1
    print(
        f"done: {len(result.downloaded)} downloaded, {len(result.kept)} already present, in {root}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
