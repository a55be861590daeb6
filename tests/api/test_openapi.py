import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode


def test_openapi_document_is_served_and_describes_the_sync_api(client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["info"]["title"] == "Kaidoki API"
    for path in (
        "/api/v1/customers/{external_id}",
        "/api/v1/products/{external_id}",
        "/api/v1/orders/{external_id}",
        "/api/v1/orders/batch",
        "/api/v1/customers/{external_id}/orders",
    ):
        assert path in doc["paths"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    order = doc["components"]["schemas"]["Order"]
    assert {"customer_external_id", "ordered_at", "updated_at", "lines"} <= set(order["required"])


def test_browsable_docs_load_without_a_cdn(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "/api/docs/static/swagger-ui-bundle.js" in page.text
    with client.get("/api/docs/static/swagger-ui-bundle.js") as script:
        assert script.status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(app, auth, mode):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema fails loudly

        @settings(
            max_examples=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            response = case.call(headers=auth)
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, case.body, response.text[:300]))

        check()
    assert failures == []


def test_the_document_states_the_shared_errors_and_the_idempotency_key(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    batch = paths["/api/v1/orders/batch"]["post"]
    assert {"401", "413", "415"} <= set(batch["responses"])
    [key] = [p for p in batch["parameters"] if p["name"] == "Idempotency-Key"]
    assert (key["in"], key["required"]) == ("header", False)
    order = paths["/api/v1/orders/{external_id}"]
    assert {"401", "413", "415", "422"} <= set(order["put"]["responses"])
    assert {"401", "404"} <= set(order["get"]["responses"])
    ack = paths["/api/v1/reorders/{reorder_id}/ack"]["post"]
    assert "401" in ack["responses"] and "Idempotency-Key" in [p["name"] for p in ack["parameters"]]
    assert "``" not in batch["description"]


def test_every_read_of_a_record_documents_401_and_404(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    reads = {path: ops["get"] for path, ops in paths.items() if "get" in ops and "{" in path}
    assert "/api/v1/customers/{external_id}/orders" in reads
    for path, read in reads.items():
        assert {"401", "404"} <= set(read["responses"]), path
