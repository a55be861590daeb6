import csv
import os
import subprocess
import sys
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


ROOT = Path(__file__).resolve().parents[2]


def _flask(*args: str) -> "subprocess.CompletedProcess[str]":
    # Exactly as FORECAST_EVAL.md runs it, in a shell with no Kaidoki configuration at all.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIDOKI_")}
    flask = Path(sys.executable).parent / "flask"
    return subprocess.run(
        [str(flask), "--app", "wsgi", "forecast", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_flask_predict_runs_without_any_service_configuration(tmp_path: Path) -> None:
    out = tmp_path / "pred.csv"
    result = _flask(
        "predict", "--orders", str(_orders(tmp_path)), "--as-of", "2024-06-01",
        "--horizon", "28", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[0] == HEADER


def test_predict_on_a_non_canonical_file_says_what_is_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("cust,date\n1,2024-01-01\n")
    result = _flask(
        "predict", "--orders", str(bad), "--as-of", "2024-06-01", "--horizon", "28",
        "--out", str(tmp_path / "p.csv"),
    )  # fmt: skip
    assert result.returncode != 0
    assert "missing columns" in result.stderr
    assert "Traceback" not in result.stderr
