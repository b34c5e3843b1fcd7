"""Every HTTP error of both services in the documented {error, detail} shape, and no server error: by hand and by schemathesis."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from device_runtime.service.app import create_app as create_service
from device_runtime.service.settings import ServiceSettings
from edgeft.registry.app import create_app as create_registry
from edgeft.registry.settings import RegistrySettings
from tests.serve.conftest import TOKEN, running

# The registry takes bundles as tar archives: generated ones are sent as raw bytes (mostly not a tar, which it must refuse).
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")
FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _service(bundle: Path, state: Path):
    return create_service(ServiceSettings.for_model(bundle, state_dir=state))


@pytest.fixture
def service(minilm_bundle: Path, tmp_path: Path) -> Iterator[httpx.Client]:
    with running(_service(minilm_bundle, tmp_path / "state")) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http


def _documented(response: httpx.Response | object) -> bool:
    body = response.json()
    return isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("detail"), str)


def test_an_unknown_path_is_a_404_in_the_documented_shape(service: httpx.Client) -> None:
    response = service.get("/v1/nothing")
    assert response.status_code == 404 and _documented(response) and response.json()["error"] == "NotFound"


def test_a_wrong_method_is_a_405_in_the_documented_shape(service: httpx.Client) -> None:
    response = service.delete("/v1/predict")
    assert response.status_code == 405 and _documented(response)
    assert "DELETE is not allowed on /v1/predict" in response.json()["detail"]


def test_over_nested_json_is_a_400_in_the_documented_shape(service: httpx.Client) -> None:
    body = '{"texts": ' + "[" * 50_000 + "]" * 50_000 + "}"
    response = service.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422) and _documented(response)


def test_a_lone_surrogate_in_a_text_is_a_422_naming_it(service: httpx.Client) -> None:
    response = service.post("/v1/predict", content='{"texts": ["\\ud800 x"]}', headers={"content-type": "application/json"})
    assert response.status_code == 422 and _documented(response) and "lone surrogate" in response.json()["detail"]


def test_a_negative_seed_is_refused_before_a_job_starts(service: httpx.Client) -> None:
    response = service.post("/v1/personalize", json={"seed": -1})
    assert response.status_code == 422 and _documented(response) and response.json()["fields"][0]["field"] == "seed"


def test_an_image_of_no_pixels_is_a_422_naming_its_shape(effnet_bundle: Path, tmp_path: Path) -> None:
    shapes = [[-2, -2], [0, 5], [5, 0], [1, 1, 0], [0, 0, 3]]
    with running(_service(effnet_bundle, tmp_path / "state")) as url:
        answers = [httpx.post(f"{url}/v1/predict", json={"images": [{"shape": s, "base64": ""}]}, timeout=60) for s in shapes]
    assert [a.status_code for a in answers] == [422] * len(shapes) and all(_documented(a) for a in answers)
    assert all(a.json()["fields"][0]["field"].startswith("images.0.shape") for a in answers)


def test_a_tar_member_thousands_of_folders_deep_is_a_400(tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member = tarfile.TarInfo("/".join(["d"] * 2100) + "/f")
        member.size = 1
        tar.addfile(member, io.BytesIO(b"x"))
    with running(create_registry(RegistrySettings(root=tmp_path / "registry", publish_token=TOKEN))) as url:
        response = httpx.put(
            f"{url}/v1/bundles/b/versions/1.0.0", content=archive.getvalue(), headers={"authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 400 and _documented(response) and "folders deep" in response.json()["detail"]


def test_registry_404_and_405_are_in_the_documented_shape(tmp_path: Path) -> None:
    app = create_registry(RegistrySettings(root=tmp_path / "registry", publish_token=TOKEN))
    with running(app) as url:
        assert _documented(missing := httpx.get(f"{url}/v1/nothing")) and missing.status_code == 404
        assert _documented(wrong := httpx.delete(f"{url}/v1/bundles")) and wrong.status_code == 405


def _check(case) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert _documented(response), f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"


def _fuzz(schema) -> list[str]:
    """Run every operation of ``schema`` on generated requests; returns the operations run."""
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        FUZZ(given(case=operation.as_strategy())(_check))()
    return [operation.label for operation in operations]


def test_the_service_answers_every_generated_request_without_a_server_error(minilm_bundle: Path, tmp_path: Path) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", _service(minilm_bundle, tmp_path / "fuzz-state"))
    assert "POST /v1/predict" in _fuzz(schema)


def test_the_image_service_answers_every_generated_request_without_a_server_error(effnet_bundle: Path, tmp_path: Path) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", _service(effnet_bundle, tmp_path / "fuzz-state"))
    assert "DELETE /v1/examples" in _fuzz(schema)


def test_the_registry_answers_every_generated_request_without_a_server_error(tmp_path: Path) -> None:
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", create_registry(RegistrySettings(root=tmp_path / "r", publish_token=TOKEN))
    )
    assert "GET /v1/bundles/{name}/versions/{version}/files/{path}" in _fuzz(schema)
