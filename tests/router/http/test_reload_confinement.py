"""POST /admin/reload only ever reads files inside the bundle folder, and its errors never show
server paths outside the models folder: every file a manifest names (embedder, tokenizer,
classifier, file-hash keys) must resolve inside its bundle, and messages give paths relative to
the models folder."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from router.http.app import create_app
from router.settings import Settings

PASSWD = Path("/etc/passwd")


@pytest.fixture
def client(models: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_dir=models, deadline_ms=5000))) as c:
        yield c


def edit_manifest(bundle: Path, change: Callable[[dict[str, object]], None]) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def reload(client: TestClient, path: str) -> tuple[int, str]:
    r = client.post("/admin/reload", json={"path": path})
    message = r.json()["error"]["message"] if r.status_code != 200 else ""
    return r.status_code, message


def outside_copy(models: Path, name: str) -> Path:
    """A valid copy of tiny-v2's `name` outside the models folder (beside it)."""
    outside = models.parent / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(models / "tiny-v2" / name, outside / name)
    return outside / name


def test_hash_key_naming_a_system_file_is_refused_without_revealing_it(
    client: TestClient, models: Path
) -> None:
    evil = models / "evil"
    shutil.copytree(models / "tiny-v2", evil)
    edit_manifest(evil, lambda m: m["files"].update({str(PASSWD): "0" * 64}))  # type: ignore[attr-defined]
    status, message = reload(client, "evil")
    assert status == 409
    assert message == (
        "refused bundle at 'evil': manifest files entry '/etc/passwd' is outside the bundle "
        "folder; every file a manifest names must be inside it; still serving 'tiny-v1'"
    )
    assert hashlib.sha256(PASSWD.read_bytes()).hexdigest() not in message


@pytest.mark.parametrize(
    ("entry", "file"),
    [
        ("embedder.file", "embedder.onnx"),
        ("embedder.tokenizer", "tokenizer.json"),
        ("classifier.file", "classifier.onnx"),
    ],
)
def test_model_file_outside_the_bundle_is_refused(
    client: TestClient, models: Path, entry: str, file: str
) -> None:
    """`../../outside/<file>`, a valid copy with its true hash, used to load and serve."""
    outside_copy(models, file)
    evil = models / "evil"
    shutil.copytree(models / "tiny-v2", evil)
    relative = f"../../outside/{file}"
    section, key = entry.split(".")

    def point_outside(m: dict[str, object]) -> None:
        m[section][key] = relative  # type: ignore[index]
        files: dict[str, str] = m["files"]  # type: ignore[assignment]
        files[relative] = files.pop(file)

    edit_manifest(evil, point_outside)
    status, message = reload(client, "evil")
    assert status == 409, message
    assert message == (
        f"refused bundle at 'evil': manifest {entry} {relative!r} is outside the bundle "
        "folder; every file a manifest names must be inside it; still serving 'tiny-v1'"
    )
    assert client.get("/version").json()["model_version"] == "tiny-v1"


def test_symlink_pointing_out_of_the_bundle_is_refused(client: TestClient, models: Path) -> None:
    target = outside_copy(models, "embedder.onnx")
    evil = models / "evil"
    shutil.copytree(models / "tiny-v2", evil)
    (evil / "embedder.onnx").unlink()
    (evil / "embedder.onnx").symlink_to(target)
    status, message = reload(client, "evil")
    assert status == 409
    assert message == (
        "refused bundle at 'evil': manifest embedder.file 'embedder.onnx' is outside the bundle "
        "folder; every file a manifest names must be inside it; still serving 'tiny-v1'"
    )


def test_default_pointer_must_name_a_folder_inside_the_models_folder(
    client: TestClient, models: Path
) -> None:
    shutil.copytree(models / "tiny-v2", models.parent / "elsewhere")
    (models / "DEFAULT").write_text("../elsewhere\n")
    r = client.post("/admin/reload")
    assert r.status_code == 409
    assert r.json()["error"]["message"] == (
        "refused bundle at 'DEFAULT': DEFAULT names '../elsewhere', which is not a folder name "
        "in the models folder; bundles there: ['tiny-v1', 'tiny-v2']; still serving 'tiny-v1'"
    )


# ---- messages give paths relative to the models folder ---------------------------------------


@pytest.mark.parametrize(
    ("setup", "path", "status", "want"),
    [
        (
            lambda b: (b / "tokenizer.json").unlink(),
            "bad",
            409,
            "refused bundle at 'bad': bundle file 'tokenizer.json' listed in the manifest is "
            "missing; still serving 'tiny-v1'",
        ),
        (
            lambda b: (b / "manifest.json").unlink(),
            "bad",
            409,
            "refused bundle at 'bad': no manifest.json in 'bad' and no DEFAULT file naming a "
            "bundle there; still serving 'tiny-v1'",
        ),
        (
            lambda b: None,
            "tiny-v9",
            404,
            "path 'tiny-v9': no bundle folder 'tiny-v9' in the models folder; "
            "bundles there: ['bad', 'tiny-v1', 'tiny-v2']",
        ),
        (
            lambda b: None,
            "/etc",
            400,
            "path '/etc' is outside the models folder; bundles there: ['bad', 'tiny-v1', 'tiny-v2']",
        ),
    ],
)
def test_reload_errors_name_paths_relative_to_the_models_folder(
    client: TestClient,
    models: Path,
    setup: Callable[[Path], object],
    path: str,
    status: int,
    want: str,
) -> None:
    shutil.copytree(models / "tiny-v2", models / "bad")
    setup(models / "bad")
    got_status, message = reload(client, path)
    assert (got_status, message) == (status, want)


def test_no_reload_error_shows_an_absolute_server_path(client: TestClient, models: Path) -> None:
    shutil.copytree(models / "tiny-v2", models / "bad")
    (models / "bad" / "manifest.json").write_text("{")
    (models / "broken").mkdir()
    (models / "broken" / "manifest.json").write_text(
        (models / "tiny-v2" / "manifest.json").read_text()
    )
    (models / "broken" / "classifier.onnx").write_bytes(b"not onnx")
    edit_manifest(
        models / "broken",
        lambda m: m["files"].update(  # type: ignore[attr-defined]
            {"classifier.onnx": hashlib.sha256(b"not onnx").hexdigest()}
        ),
    )
    for f in ("embedder.onnx", "tokenizer.json"):
        shutil.copy(models / "tiny-v2" / f, models / "broken" / f)
    messages = [reload(client, p)[1] for p in ("bad", "broken", "nowhere", "../..", "tiny-v2/x")]
    assert all(messages), messages
    for message in messages:
        assert str(models.parent) not in message, message
    assert messages[0].startswith(
        "refused bundle at 'bad': manifest 'bad/manifest.json' is invalid"
    )
    assert messages[1].startswith("refused bundle at 'broken': ")
