from tests.factories import order_body, product_body


def test_put_new_product_returns_201_with_default_ops_settings(client, auth):
    response = client.put("/api/v1/products/p-1", json=product_body(), headers=auth)
    assert response.status_code == 201
    assert response.json["result"] == "created"
    assert response.json["default_interval_days"] == 30
    assert response.json["target_stockout_risk"] == 0.1


def test_put_same_product_twice_is_unchanged(client, auth):
    client.put("/api/v1/products/p-1", json=product_body(), headers=auth)
    response = client.put("/api/v1/products/p-1", json=product_body(), headers=auth)
    assert response.json["result"] == "unchanged"


def test_non_positive_pack_size_is_422(client, auth):
    response = client.put("/api/v1/products/p-1", json=product_body(pack_size=0), headers=auth)
    assert response.status_code == 422
    assert "pack_size" in response.json["errors"]["json"]


def test_product_named_by_an_order_is_a_placeholder_until_synced(client, auth):
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    assert client.get("/api/v1/products/p-1", headers=auth).json["is_placeholder"] is True
    response = client.put("/api/v1/products/p-1", json=product_body(), headers=auth)
    assert response.json["result"] == "updated"
    assert response.json["is_placeholder"] is False
    assert response.json["name"] == "お米 5kg"
