"""The model store on disk: `$KUBENTO_HOME/models/<name>/<version>/model.yaml` + files.

Every write goes to a staging directory beside the models and is renamed into place
only when complete, so `get` never sees a half-written model: a process killed mid-save
leaves at most a staging directory (cleaned up by a later save on the same host), and
two concurrent saves of one name land as two versions. Deleting renames the version
out of sight first, for the same reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import socket
import tarfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from kubento import contract
from kubento._models.tag import BadTag, Tag, new_version

if TYPE_CHECKING:
    from kubento import Runner

ENV_HOME = contract.ENV_HOME
DEFAULT_HOME = "~/kubento"
INFO_FILE = "model.yaml"
FORMAT_VERSION = 1
_STAGING = ".staging"
_CHUNK = 1 << 20


class ModelStoreError(Exception):
    """A store operation failed for a reason the message names (tag, path, what to do)."""


class ModelNotFound(ModelStoreError, LookupError):
    pass


class ModelExists(ModelStoreError):
    pass


class CorruptModel(ModelStoreError):
    """Files do not match the digest in model.yaml, or model.yaml does not parse."""


def home() -> Path:
    """`$KUBENTO_HOME`, default `~/kubento`."""
    return Path(os.environ.get(ENV_HOME) or DEFAULT_HOME).expanduser()


@dataclass
class ModelInfo:
    """What `model.yaml` holds."""

    tag: Tag
    framework: str
    creation_time: dt.datetime
    signatures: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    framework_versions: dict[str, str] = field(default_factory=dict)
    digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "tag": str(self.tag),
            "framework": self.framework,
            "creation_time": self.creation_time.isoformat(),
            "digest": self.digest,
            "signatures": self.signatures,
            "labels": self.labels,
            "metadata": self.metadata,
            "options": self.options,
            "framework_versions": self.framework_versions,
        }

    @classmethod
    def from_file(cls, path: Path) -> ModelInfo:
        try:
            raw = yaml.safe_load(path.read_text())
            tag = Tag.parse(raw["tag"])
            if tag.version is None:
                raise BadTag(f"tag {raw['tag']!r} has no version")
            return cls(
                tag=tag,
                framework=str(raw["framework"]),
                creation_time=dt.datetime.fromisoformat(raw["creation_time"]),
                signatures=dict(raw.get("signatures") or {}),
                labels=dict(raw.get("labels") or {}),
                metadata=dict(raw.get("metadata") or {}),
                options=dict(raw.get("options") or {}),
                framework_versions=dict(raw.get("framework_versions") or {}),
                digest=str(raw["digest"]),
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise CorruptModel(f"{path} is not a valid model.yaml: {exc}") from None


class Model:
    """A saved model: its tag, its directory and its model.yaml.

    While inside `create()`, `path` is the staging directory to write files into.
    """

    def __init__(self, info: ModelInfo, path: Path) -> None:
        self.info = info
        self.path = path

    @property
    def tag(self) -> Tag:
        return self.info.tag

    def path_of(self, relative: str) -> Path:
        return self.path / relative

    def verify(self) -> None:
        """Raise CorruptModel unless the files match the recorded digest."""
        actual = content_digest(self.path)
        if actual != self.info.digest:
            raise CorruptModel(
                f"model {self.tag}: files in {self.path} have digest {actual}, "
                f"model.yaml records {self.info.digest}"
            )

    def to_runner(
        self,
        name: str | None = None,
        *,
        max_batch_size: int | None = None,
        max_latency_ms: int | None = None,
        method_configs: Mapping[str, Mapping[str, int | float]] | None = None,
    ) -> Runner:
        """A Runner whose methods are this model's signatures (kubento.sklearn, onnx, ...)."""
        from kubento._models.framework import to_runner

        return to_runner(
            self,
            name=name,
            max_batch_size=max_batch_size,
            max_latency_ms=max_latency_ms,
            method_configs=method_configs,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and (self.tag, self.path) == (other.tag, other.path)

    def __hash__(self) -> int:
        return hash((self.tag, self.path))

    def __repr__(self) -> str:
        return f"<Model {self.tag} framework={self.info.framework}>"


def content_digest(directory: Path) -> str:
    """sha256 over every file but model.yaml: relative path, size and bytes, in path order."""
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.relative_to(directory) != Path(INFO_FILE)
    )
    for path in files:
        relative = path.relative_to(directory).as_posix().encode()
        digest.update(len(relative).to_bytes(8, "big") + relative)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _fsync_tree(directory: Path) -> None:
    """Make files and directory entries durable before the rename publishes them."""
    for path in [*directory.rglob("*"), directory]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ModelStore:
    """Models under `root/models`. Reads never write, so a read-only mount serves `get`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.models_dir = self.root / "models"

    def __repr__(self) -> str:
        return f"<ModelStore {self.models_dir}>"

    # -- reading ---------------------------------------------------------------------------

    def _versions(self, name: str) -> list[Model]:
        found = []
        directory = self.models_dir / name
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in directory.iterdir():
                info_path = entry / INFO_FILE
                if entry.name.startswith(".") or not info_path.is_file():
                    continue
                found.append(Model(ModelInfo.from_file(info_path), entry))
        return sorted(found, key=lambda m: (m.info.creation_time, m.tag.version or ""))

    def get(self, tag: str | Tag) -> Model:
        """`name:version`, or the latest (by creation time) for `name` or `name:latest`."""
        wanted = Tag.parse(tag)
        versions = self._versions(wanted.name)
        if wanted.version is None:
            if versions:
                return versions[-1]
        else:
            for model in versions:
                if model.tag.version == wanted.version:
                    return model
        known = [m.tag.version for m in versions[-5:]]
        hint = f"versions of {wanted.name!r}: {known}" if known else "no model of that name"
        raise ModelNotFound(f"model {wanted} not found in {self.models_dir} ({hint})")

    def list(self, name: str | None = None) -> list[Model]:
        """All models (or all versions of `name`), oldest first within a name."""
        if name is not None:
            return self._versions(Tag.parse(name).name)
        names = []
        with contextlib.suppress(FileNotFoundError):
            names = sorted(p.name for p in self.models_dir.iterdir() if not p.name.startswith("."))
        return [model for n in names for model in self._versions(n)]

    # -- writing ---------------------------------------------------------------------------

    def _staging(self) -> Path:
        staging = self.models_dir / _STAGING
        staging.mkdir(parents=True, exist_ok=True)
        self._clean_staging(staging)
        path = staging / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        path.mkdir()
        return path

    @staticmethod
    def _clean_staging(staging: Path) -> None:
        """Remove what saves killed mid-write on this host left behind."""
        host = socket.gethostname()
        for entry in staging.iterdir():
            entry_host, _, rest = entry.name.rpartition("-")[0].rpartition("-")
            if entry_host != host or not rest.isdigit():
                continue
            try:
                os.kill(int(rest), 0)
            except ProcessLookupError:
                shutil.rmtree(entry, ignore_errors=True)
            except PermissionError:
                pass

    def _publish(self, model: Model) -> Model:
        """Seal a staged model (digest, model.yaml) and rename it into place."""
        model.info.digest = content_digest(model.path)
        (model.path / INFO_FILE).write_text(yaml.safe_dump(model.info.to_dict(), sort_keys=False))
        _fsync_tree(model.path)
        target = self.models_dir / model.tag.name / str(model.tag.version)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(model.path, target)
        except OSError as exc:
            if target.exists():
                raise ModelExists(
                    f"model {model.tag} already exists in {self.models_dir}: delete it first "
                    f"or save under another version"
                ) from None
            raise ModelStoreError(f"model {model.tag}: cannot move it into place: {exc}") from exc
        with contextlib.suppress(OSError):
            fd = os.open(target.parent, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        return Model(model.info, target)

    @contextlib.contextmanager
    def create(
        self,
        name: str | Tag,
        *,
        framework: str = "custom",
        signatures: Mapping[str, Mapping[str, Any]] | None = None,
        labels: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        framework_versions: Mapping[str, str] | None = None,
    ) -> Iterator[Model]:
        """Write files into `model.path` inside the block; the model exists only after it."""
        tag = Tag.parse(name)
        tag = Tag(tag.name, tag.version or new_version())
        info = ModelInfo(
            tag=tag,
            framework=framework,
            creation_time=dt.datetime.now(dt.UTC),
            signatures={k: dict(v) for k, v in (signatures or {}).items()},
            labels={str(k): str(v) for k, v in (labels or {}).items()},
            metadata=dict(metadata or {}),
            options=dict(options or {}),
            framework_versions=dict(framework_versions or {}),
        )
        if (self.models_dir / tag.name / str(tag.version)).exists():
            raise ModelExists(f"model {tag} already exists in {self.models_dir}")
        staged = Model(info, self._staging())
        try:
            yield staged
            published = self._publish(staged)
        except BaseException:
            shutil.rmtree(staged.path, ignore_errors=True)
            raise
        staged.path = published.path

    def delete(self, tag: str | Tag) -> Model:
        model = self.get(tag)
        aside = self._staging()
        os.rename(model.path, aside / "deleted")
        shutil.rmtree(aside, ignore_errors=True)
        with contextlib.suppress(OSError):
            model.path.parent.rmdir()  # the name's directory, once its last version is gone
        return model

    # -- archives --------------------------------------------------------------------------

    def export_model(self, tag: str | Tag, path: Path | str) -> Path:
        """One tar archive (gzip when `path` ends in .gz or .tgz) with model.yaml at its root."""
        model = self.get(tag)
        path = Path(path)
        if path.is_dir():
            path = path / f"{model.tag.name}-{model.tag.version}.tar"
        mode = "w:gz" if path.suffix in (".gz", ".tgz") else "w"
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with tarfile.open(partial, mode) as archive:  # type: ignore[call-overload]
                for member in sorted(model.path.rglob("*")):
                    archive.add(
                        member, arcname=member.relative_to(model.path).as_posix(), recursive=False
                    )
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return path

    def import_model(self, path: Path | str) -> Model:
        """Import an exported archive; the same tag with the same digest is a no-op."""
        path = Path(path)
        staged_dir = self._staging()
        try:
            try:
                with tarfile.open(path, "r:*") as archive:
                    for member in archive.getmembers():
                        if not (member.isfile() or member.isdir()):
                            raise CorruptModel(
                                f"{path}: archive member {member.name!r} is not a regular file"
                            )
                        name = PurePosixPath(member.name)
                        if name.is_absolute() or ".." in name.parts:
                            raise CorruptModel(
                                f"{path}: archive member {member.name!r} points outside the model"
                            )
                    if hasattr(tarfile, "data_filter"):
                        archive.extractall(staged_dir, filter="data")
                    else:  # Python before 3.11.4 (Debian bookworm's): checked by hand above
                        archive.extractall(staged_dir)
            except (tarfile.TarError, OSError) as exc:
                raise CorruptModel(f"{path} is not a model archive: {exc}") from None
            if not (staged_dir / INFO_FILE).is_file():
                raise CorruptModel(f"{path} is not a model archive: it has no {INFO_FILE}")
            staged = Model(ModelInfo.from_file(staged_dir / INFO_FILE), staged_dir)
            staged.verify()
            existing = next(
                (m for m in self._versions(staged.tag.name) if m.tag == staged.tag), None
            )
            if existing is not None:
                if existing.info.digest == staged.info.digest:
                    return existing
                raise ModelExists(
                    f"model {staged.tag} already exists in {self.models_dir} with digest "
                    f"{existing.info.digest}, the archive {path} has {staged.info.digest}"
                )
            try:
                return self._publish(staged)
            except ModelExists:
                # Imported concurrently by someone else; fine if it is the same content.
                existing = self.get(staged.tag)
                if existing.info.digest == staged.info.digest:
                    return existing
                raise
        finally:
            shutil.rmtree(staged_dir, ignore_errors=True)
