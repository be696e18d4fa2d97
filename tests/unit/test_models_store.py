"""The model store: tags, versions, atomic saves across processes, and archives."""

import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from kubento import models
from kubento._models.tag import new_version


@pytest.fixture(autouse=True)
def store_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBENTO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def save(name: str, content: bytes = b"weights", **kwargs: object) -> models.Model:
    with models.create(name, **kwargs) as model:  # type: ignore[arg-type]
        (model.path / "weights.bin").write_bytes(content)
    return model


def test_create_then_get_returns_the_files_labels_and_metadata(store_home: Path) -> None:
    saved = save("iris-clf", labels={"team": "ml"}, metadata={"accuracy": 0.97})
    got = models.get(str(saved.tag))
    assert got.tag == saved.tag
    assert got.path == store_home / "models" / "iris-clf" / str(saved.tag.version)
    assert (got.path / "weights.bin").read_bytes() == b"weights"
    assert got.info.labels == {"team": "ml"}
    assert got.info.metadata == {"accuracy": 0.97}
    assert got.info.digest.startswith("sha256:")
    got.verify()


def test_list_returns_every_version_oldest_first_and_delete_removes_one() -> None:
    first, second = save("a"), save("a")
    other = save("b")
    assert [m.tag for m in models.list()] == [first.tag, second.tag, other.tag]
    assert [m.tag for m in models.list("a")] == [first.tag, second.tag]
    assert models.delete(str(first.tag)).tag == first.tag
    assert [m.tag for m in models.list()] == [second.tag, other.tag]
    with pytest.raises(models.ModelNotFound, match=str(first.tag)):
        models.get(str(first.tag))


def test_deleting_the_last_version_removes_the_name(store_home: Path) -> None:
    only = save("solo")
    models.delete("solo:latest")
    assert models.list() == []
    assert not (store_home / "models" / "solo").exists()
    assert not only.path.exists()


def test_latest_is_the_newest_of_several_versions() -> None:
    saved = [save("clf", content=str(i).encode()) for i in range(4)]
    for tag in ("clf", "clf:latest"):
        latest = models.get(tag)
        assert latest.tag == saved[-1].tag
        assert (latest.path / "weights.bin").read_bytes() == b"3"


def test_generated_versions_sort_by_creation_time() -> None:
    versions = [new_version(ns) for ns in (1, 2**40, 2**60)]
    assert versions == sorted(versions)
    assert len({new_version(5) for _ in range(20)}) == 20


def test_an_explicit_version_is_kept_and_cannot_be_saved_twice() -> None:
    save("clf:v1")
    assert models.get("clf:v1").tag.version == "v1"
    with pytest.raises(models.ModelExists, match="clf:v1"):
        save("clf:v1")


@pytest.mark.parametrize(
    "tag", ["Iris", "iris:", "-iris", "iris_", "ir is", "iris:v1:v2", "a" * 64, "iris:" + "v" * 64]
)
def test_a_bad_tag_is_refused_naming_it(tag: str) -> None:
    with pytest.raises(models.BadTag) as caught:
        models.get(tag)
    assert repr(tag) in str(caught.value)
    with pytest.raises(models.BadTag):
        save(tag)


def test_a_missing_model_or_version_is_an_error_naming_the_tag() -> None:
    with pytest.raises(models.ModelNotFound, match="nothing:latest"):
        models.get("nothing")
    kept = save("clf")
    with pytest.raises(models.ModelNotFound, match="clf:nope") as caught:
        models.get("clf:nope")
    assert str(kept.tag.version) in str(caught.value)
    with pytest.raises(models.ModelNotFound, match="clf:nope"):
        models.delete("clf:nope")


def test_an_error_inside_create_saves_nothing(store_home: Path) -> None:
    with pytest.raises(RuntimeError), models.create("broken") as model:
        (model.path / "weights.bin").write_bytes(b"half")
        raise RuntimeError("training failed")
    assert models.list() == []
    assert list((store_home / "models" / ".staging").iterdir()) == []


SAVER = textwrap.dedent(
    """
    import sys, time
    from kubento import models
    start = float(sys.argv[1])
    while time.time() < start:
        time.sleep(0.001)
    with models.create("shared") as model:
        (model.path / "weights.bin").write_bytes(sys.argv[2].encode() * 1000)
    print(model.tag.version)
    """
)


def test_concurrent_saves_of_one_name_from_several_processes_all_land(store_home: Path) -> None:
    start = time.time() + 1.5
    savers = [
        subprocess.Popen(
            [sys.executable, "-c", SAVER, str(start), str(i)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "KUBENTO_HOME": str(store_home)},
        )
        for i in range(4)
    ]
    printed = set()
    for saver in savers:
        out, _ = saver.communicate(timeout=30)
        assert saver.returncode == 0
        printed.add(out.strip())
    stored = models.list("shared")
    assert {m.tag.version for m in stored} == printed
    assert len(printed) == 4
    assert sorted((m.path / "weights.bin").read_bytes()[:1] for m in stored) == [
        b"0", b"1", b"2", b"3"
    ]  # fmt: skip
    for model in stored:
        model.verify()


KILLED_SAVER = textwrap.dedent(
    """
    import sys, time
    from kubento import models
    with models.create("victim") as model:
        with (model.path / "weights.bin").open("wb") as out:
            out.write(b"x" * 4096)
            out.flush()
            print("writing", flush=True)
            time.sleep(60)
    """
)


def test_a_process_killed_mid_save_leaves_nothing_get_returns(store_home: Path) -> None:
    saver = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVER],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "KUBENTO_HOME": str(store_home)},
    )
    assert saver.stdout is not None
    assert saver.stdout.readline().strip() == "writing"
    saver.send_signal(signal.SIGKILL)
    saver.wait(timeout=10)
    with pytest.raises(models.ModelNotFound, match="victim:latest"):
        models.get("victim")
    assert models.list() == []
    staging = store_home / "models" / ".staging"
    assert len(list(staging.iterdir())) == 1  # what the killed save wrote, out of sight
    save("next")
    assert [m.tag.name for m in models.list()] == ["next"]
    assert list(staging.iterdir()) == []  # the next save on this host cleaned it up


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_export_then_import_elsewhere_keeps_the_tag_and_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    saved = save("clf", labels={"team": "ml"})
    (saved.path / "sub").mkdir()
    archive = models.export_model("clf", tmp_path / f"clf{suffix}")
    monkeypatch.setenv("KUBENTO_HOME", str(tmp_path / "elsewhere"))
    imported = models.import_model(archive)
    assert imported.tag == saved.tag
    assert imported.info.digest == saved.info.digest
    assert imported.info.labels == {"team": "ml"}
    assert models.get("clf").path == tmp_path / "elsewhere" / "models" / "clf" / str(
        saved.tag.version
    )
    assert models.import_model(archive).info.digest == saved.info.digest  # again: a no-op


def test_export_into_a_directory_names_the_archive_after_the_tag(tmp_path: Path) -> None:
    saved = save("clf")
    archive = models.export_model("clf", tmp_path)
    assert archive == tmp_path / f"clf-{saved.tag.version}.tar"


def tampered_copy(archive: Path, target: Path, member_name: str, content: bytes) -> Path:
    with tarfile.open(archive) as source, tarfile.open(target, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member) if member.isfile() else None
            if member.name == member_name:
                member.size = len(content)
                data = io.BytesIO(content)
            out.addfile(member, data)
    return target


def test_importing_a_tampered_archive_fails_naming_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = save("clf")
    archive = models.export_model("clf", tmp_path / "clf.tar")
    bad = tampered_copy(archive, tmp_path / "bad.tar", "weights.bin", b"evil!!!")
    monkeypatch.setenv("KUBENTO_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(models.CorruptModel, match=str(saved.tag)):
        models.import_model(bad)
    assert models.list() == []


def test_importing_a_file_that_is_not_an_archive_fails_naming_it(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar")
    with pytest.raises(models.CorruptModel, match=re.escape("junk.tar")):
        models.import_model(junk)


def test_a_service_class_declares_the_stored_models_it_refers_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import kubento
    from kubento._sdk.classes import config_of

    monkeypatch.setenv("KUBENTO_HOME", str(tmp_path))
    with kubento.models.create("iris") as saved:
        (saved.path / "weights").write_bytes(b"w")

    @kubento.service
    class Classifier:
        model = kubento.models.get("iris:latest")

        @kubento.api
        def predict(self, x: str) -> str:
            return x

    config = config_of(Classifier)
    assert config is not None
    assert [str(m.tag) for m in config.models] == [str(saved.tag)]


@pytest.mark.parametrize("has_filter", [True, False], ids=["tar-filters", "older-python"])
def test_an_archive_member_pointing_outside_the_model_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, has_filter: bool
) -> None:
    if not has_filter:  # Debian bookworm's Python 3.11.2 has no tarfile extraction filters
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    saved = save("clf")
    archive = models.export_model("clf", tmp_path / "clf.tar")
    monkeypatch.setenv("KUBENTO_HOME", str(tmp_path / "elsewhere"))
    assert models.import_model(archive).info.digest == saved.info.digest
    evil = tmp_path / "evil.tar"
    with tarfile.open(archive) as source, tarfile.open(evil, "w") as out:
        for member in source.getmembers():
            out.addfile(member, source.extractfile(member) if member.isfile() else None)
        escape = tarfile.TarInfo("../escaped")
        escape.size = 1
        out.addfile(escape, io.BytesIO(b"x"))
    with pytest.raises(models.CorruptModel, match="points outside the model"):
        models.import_model(evil)
    assert not (tmp_path / "elsewhere" / "models" / "escaped").exists()
