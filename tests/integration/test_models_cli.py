"""`kubento models ...` through the installed `kubento` executable, with no service around."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubento import models

KUBENTO = str(Path(sys.executable).parent / "kubento")


def kubento(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBENTO, "models", *argv],
        env={**os.environ, "KUBENTO_HOME": str(home)},
        cwd=home.parent,  # no service here: models commands never load one
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBENTO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def save(name: str) -> models.Model:
    with models.create(name, labels={"team": "ml"}) as model:
        (model.path / "weights.bin").write_bytes(b"weights of " + name.encode())
    return model


def test_list_and_get_show_the_stored_models(home: Path) -> None:
    first, second = save("clf"), save("clf")
    listed = kubento(home, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["TAG", "FRAMEWORK", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == [str(first.tag), str(second.tag)]
    got = kubento(home, "get", "clf:latest")
    assert got.returncode == 0, got.stderr
    info = yaml.safe_load(got.stdout)
    assert info["tag"] == str(second.tag)
    assert info["digest"] == second.info.digest
    assert info["path"] == str(second.path)


def test_export_import_and_delete_move_a_model_between_stores(home: Path, tmp_path: Path) -> None:
    saved = save("clf")
    exported = kubento(home, "export", "clf", str(tmp_path / "clf.tar.gz"))
    assert exported.returncode == 0, exported.stderr
    other = tmp_path / "other"
    imported = kubento(other, "import", str(tmp_path / "clf.tar.gz"))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == f"imported {saved.tag}"
    assert models.ModelStore(other).get("clf").info.digest == saved.info.digest
    deleted = kubento(home, "--home", str(other), "delete", str(saved.tag))
    assert deleted.returncode == 0, deleted.stderr
    assert models.ModelStore(other).list() == []
    assert models.get("clf").tag == saved.tag  # --home chose the other store


def test_pull_from_a_path_checks_the_sha256(home: Path, tmp_path: Path) -> None:
    saved = save("clf")
    archive = models.export_model("clf", tmp_path / "clf.tar")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    other = tmp_path / "other"
    wrong = kubento(other, "pull", str(saved.tag), str(archive), "--sha256", "0" * 64)
    assert wrong.returncode == 1
    assert str(saved.tag) in wrong.stderr and str(archive) in wrong.stderr
    pulled = kubento(other, "pull", str(saved.tag), str(archive), "--sha256", digest)
    assert pulled.returncode == 0, pulled.stderr
    assert models.ModelStore(other).get(str(saved.tag)).info.digest == saved.info.digest


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["get", "missing:v1"], "missing:v1"), (["delete", "Bad:Tag"], "'Bad:Tag'")],
)
def test_a_missing_or_bad_tag_exits_1_naming_it(home: Path, argv: list[str], named: str) -> None:
    result = kubento(home, *argv)
    assert result.returncode == 1
    assert result.stderr.startswith(f"kubento models {argv[0]}: ")
    assert named in result.stderr
