"""Convert the UCI Online Retail II parquet to the canonical order CSV.

    python benchmarks/convert_online_retail.py RAW.parquet OUT.csv[.gz]

Rules (``app.forecast.data.convert_online_retail``): drop cancellation invoices ("C...") and
non-positive quantities, drop rows without a Customer ID, one purchase per customer x product x
day (units summed). The backtest/predict ``--orders`` accept the result, or the raw parquet.
"""

import sys

import pandas as pd

from app.forecast.data import convert_online_retail


def main(raw: str, out: str) -> None:
    df = convert_online_retail(pd.read_parquet(raw))
    df.to_csv(out, index=False)
    print(f"{len(df)} rows -> {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
