"""Reading order histories into flat arrays (file I/O lives here, at the edge of the package).

The canonical order-history CSV (optionally gzipped) has the header
``order_id,customer_id,product_id,ordered_at,quantity``; ``ordered_at`` is an ISO date or
datetime (the date part is used), ``quantity`` a positive number. Ids are kept as strings
(Ta Feng customer ids have leading zeros).

Online Retail II (UCI, raw columns ``Invoice, StockCode, Description, Quantity, InvoiceDate,
Price, Customer ID, Country``) is converted by ``convert_online_retail``: cancellation invoices
(starting with "C") and non-positive quantities are dropped, rows without a Customer ID are
dropped, and lines are merged to one purchase per customer x product x day (units summed, the
day's first invoice as order id). ``read_orders`` applies it to a ``.parquet`` file with those
columns, so the CLI accepts the raw parquet as well as a converted CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from app.forecast.features import BatchInput, empty_answers

CANONICAL_COLUMNS = ["order_id", "customer_id", "product_id", "ordered_at", "quantity"]
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class OrderData:
    """A ``BatchInput`` with the (customer_id, product_id) of each pair."""

    batch: BatchInput
    customer_ids: np.ndarray
    product_of_pair: np.ndarray

    def pair_keys(self) -> pd.DataFrame:
        return pd.DataFrame({"customer_id": self.customer_ids, "product_id": self.product_of_pair})


def convert_online_retail(raw: pd.DataFrame) -> pd.DataFrame:
    """Online Retail II raw rows -> canonical columns (see the module docstring)."""
    df = raw[~raw["Invoice"].astype(str).str.startswith("C")]
    df = df[(df["Quantity"] > 0) & df["Customer ID"].notna()]
    out = pd.DataFrame(
        {
            "order_id": df["Invoice"].astype(str),
            "customer_id": df["Customer ID"].astype("int64").astype(str),
            "product_id": df["StockCode"].astype(str).str.strip(),
            "ordered_at": pd.to_datetime(df["InvoiceDate"]).dt.strftime("%Y-%m-%d"),
            "quantity": df["Quantity"].astype("int64"),
        }
    )
    return (
        out.groupby(["customer_id", "product_id", "ordered_at"], as_index=False, sort=True)
        .agg(order_id=("order_id", "first"), quantity=("quantity", "sum"))
        .loc[:, CANONICAL_COLUMNS]
    )


def read_frame(path: str | Path) -> pd.DataFrame:
    """Canonical order lines from a CSV(.gz), or from an Online Retail II parquet (converted)."""
    p = Path(path)
    if p.suffix == ".parquet":
        raw = pd.read_parquet(p)
        if "Invoice" in raw.columns:
            return convert_online_retail(raw)
        return raw.loc[:, CANONICAL_COLUMNS]
    df = pd.read_csv(
        p, dtype={"order_id": str, "customer_id": str, "product_id": str, "ordered_at": str}
    )
    missing = set(CANONICAL_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{p}: missing columns {sorted(missing)}")
    return df


def day_ordinals(ordered_at: pd.Series) -> np.ndarray:
    """ISO date / datetime strings -> date ordinals."""
    days = pd.to_datetime(ordered_at.str.slice(0, 10), format="%Y-%m-%d")
    return np.asarray(days.to_numpy().astype("datetime64[D]").astype(np.int64) + _EPOCH_ORDINAL)


def batch_from_frame(df: pd.DataFrame) -> OrderData:
    """Canonical order lines -> flat arrays, one pair per (customer_id, product_id)."""
    if (df["quantity"] <= 0).any():
        raise ValueError("quantities must be positive")
    cust_code, cust_ids = pd.factorize(df["customer_id"], sort=True)
    prod_code, prod_ids = pd.factorize(df["product_id"], sort=True)
    pair_key = cust_code.astype(np.int64) * (len(prod_ids) + 1) + prod_code
    pair_code, pair_uniq = pd.factorize(pair_key, sort=True)
    pair_cust = (pair_uniq // (len(prod_ids) + 1)).astype(np.int64)
    pair_prod = (pair_uniq % (len(prod_ids) + 1)).astype(np.int64)
    a_pair, a_day, a_kind, a_snooze = empty_answers()
    batch = BatchInput(
        pair_product=pair_prod,
        pair_customer=pair_cust,
        product_ids=tuple(str(v) for v in prod_ids),
        line_pair=pair_code.astype(np.int64),
        line_day=day_ordinals(df["ordered_at"].astype(str)),
        line_qty=df["quantity"].to_numpy(dtype=np.float64),
        answer_pair=a_pair,
        answer_day=a_day,
        answer_kind=a_kind,
        answer_snooze_days=a_snooze,
    )
    return OrderData(batch, np.asarray(cust_ids)[pair_cust], np.asarray(prod_ids)[pair_prod])


def read_orders(path: str | Path) -> OrderData:
    return batch_from_frame(read_frame(path))
