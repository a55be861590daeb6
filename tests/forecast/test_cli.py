import csv
from pathlib import Path

from click.testing import CliRunner

from app.cli.forecast import forecast_cli

HEADER = (
    "customer_id,product_id,n_purchases,last_purchased_on,median_on,q10_on,q90_on,"
    "p_within_horizon,prompt_on,method"
)


def _orders(tmp_path: Path) -> Path:
    rows = ["order_id,customer_id,product_id,ordered_at,quantity"]
    for c in range(30):
        for k in range(4):
            rows.append(f"o{c}-{k},c{c:03d},p{c % 3},2024-0{1 + k}-{1 + c % 20:02d},{1 + c % 2}")
    rows.append("late,c999,p0,2024-06-01,1")  # on/after --as-of: ignored
    rows.append("same-day,c000,p0,2024-06-01T09:30:00,2")
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _predict(tmp_path: Path) -> list[dict[str, str]]:
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(
        forecast_cli,
        ["predict", "--orders", str(_orders(tmp_path)), "--as-of", "2024-06-01",
         "--horizon", "28", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == HEADER
    with out.open() as f:
        return list(csv.DictReader(f))


def test_predict_writes_header_and_one_row_per_pair(tmp_path: Path) -> None:
    rows = _predict(tmp_path)
    assert len(rows) == 30
    assert {r["method"] for r in rows} == {"model"}


def test_predict_ignores_rows_dated_on_or_after_as_of(tmp_path: Path) -> None:
    rows = _predict(tmp_path)
    assert all(r["customer_id"] != "c999" for r in rows)
    assert all(r["last_purchased_on"] < "2024-06-01" for r in rows)
    c0 = next(r for r in rows if r["customer_id"] == "c000")
    assert c0["n_purchases"] == "4"
