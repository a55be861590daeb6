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
