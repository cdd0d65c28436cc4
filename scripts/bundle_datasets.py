"""Regenerate ``datasets/`` (gzip files + ``manifest.toml``) from ``../shared/data``.

Reproducible: gzip headers carry mtime 0 and no file name, so the same input gives the same bytes
(for a given zlib). The committed files stay the source of truth; this script documents how they
were made. Usage: ``python scripts/bundle_datasets.py [--shared DIR] [--out DIR]``
(``--shared`` defaults to ``$CRASHBT_SHARED/data`` or ``../shared/data``).

Imports only the standard library (it must run without crashbt installed).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

BINANCE = ("Binance spot klines, public market data, via GitHub finom/static-klines "
           "(commits 338eb785babd34ec9a23458e643391439810bfdb and "
           "fa298d63c3886d6a1b3540cb8c68a35a350872c4)")
BINANCE_ATTR = "Market data: Binance (binance.com)."
BINANCE_LIC = "Binance public market data, Binance API terms of use (no licence file upstream)"


@dataclass(frozen=True)
class Spec:
    """One bundled dataset: where it comes from and what the manifest says about it."""

    name: str
    source_file: str
    kind: str
    symbol: str
    timeframe: str
    source: str
    attribution: str
    licence: str
    keep_columns: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def _bars(symbol: str, timeframe: str) -> Spec:
    gz = ".gz" if timeframe == "15m" else ""
    return Spec(f"{symbol.lower()}_{timeframe}", f"{symbol.lower()}_{timeframe}.csv{gz}", "bars",
                symbol, timeframe, BINANCE, BINANCE_ATTR, BINANCE_LIC)


SPECS: tuple[Spec, ...] = (
    *(_bars(s, tf) for s in ("BTCUSDT", "ETHUSDT") for tf in ("1d", "1h", "15m")),
    Spec("btc_funding_8h", "btc_funding_8h.csv", "funding_8h", "BTCUSDT", "8h",
         "Binance USDT-M BTCUSDT perpetual funding history, via GitHub gg-cmk/binance-quant "
         "data/BTCUSDT-funding.csv (commit 451a93edbff5ef4efad883891db59cd41f4489c7)",
         BINANCE_ATTR, BINANCE_LIC,
         extra={"publish_lag": "0s",
                "publish_rule": "known at the settlement time (the row's timestamp)",
                "units": "funding_rate: decimal per interval (0.0001 = 0.01%); "
                         "funding_interval_hours: hours"}),
    Spec("btc_etf_flows_1d", "btc_etf_flows_1d.csv", "etf_flows", "BTC", "1d",
         "Farside Investors bitcoin-etf-flow-all-data, via GitHub "
         "moltovy/Crypto-Research-Paper-Data-Factors-Analysis- (commit "
         "63aab83258d4baadc323ed829e270ea6684566df) and btabiado/alpine-data (commit "
         "95ebdbfd0c855d99fceca57ae3a50b578cdf70cd)",
         "ETF flow data: Farside Investors (farside.co.uk).",
         "no licence stated upstream; redistributed with attribution per Farside's terms",
         extra={"publish_lag": "1d",
                "publish_rule": "a US trading day's flow is known after the US close: usable "
                                "from D+1 00:00 UTC",
                "units": "USD (Farside US$ millions x 1e6); trading days only"}),
    Spec("fear_greed_1d", "fear_greed_1d.csv", "fear_greed", "BTC", "1d",
         "Alternative.me Crypto Fear & Greed Index, via GitHub "
         "moltovy/Crypto-Research-Paper-Data-Factors-Analysis- (commit "
         "63aab83258d4baadc323ed829e270ea6684566df)",
         "Crypto Fear & Greed Index: Alternative.me (alternative.me).",
         "Alternative.me: free to use with attribution",
         extra={"publish_lag": "1d",
                "publish_rule": "a day's value is used only after that UTC day has ended",
                "units": "value: index 0..100; classification: label"}),
    Spec("btc_difficulty_blocks_1d", "btc_hashrate_1d.csv", "hash_rate", "BTC", "1d",
         "Bitcoin network difficulty and blocks mined per UTC day (public on-chain facts), "
         "via GitHub moltovy/Crypto-Research-Paper-Data-Factors-Analysis- (commit "
         "63aab83258d4baadc323ed829e270ea6684566df); only these two columns are bundled",
         "Bitcoin blockchain (public on-chain facts).",
         "facts of the public Bitcoin blockchain; the other CryptoQuant columns are not bundled",
         keep_columns=("timestamp", "difficulty", "blocks_mined"),
         extra={"publish_lag": "1d",
                "publish_rule": "a finished UTC day: usable from D+1 00:00 UTC",
                "derived": "hash_rate_ehs = blocks_mined x difficulty x 2^32 / 86400 s / 1e18 "
                           "(EH/s); equals the research file's hash_rate_ehs to its printed "
                           "precision except on difficulty-adjustment days, where the source "
                           "weights each block by its own difficulty",
                "units": "difficulty: dimensionless; blocks_mined: blocks per UTC day"}),
)


def shared_data_dir() -> Path:
    """The research copies: ``$CRASHBT_SHARED/data``, else ``../shared/data`` beside the repo."""
    root = os.environ.get("CRASHBT_SHARED")
    return (Path(root) if root else REPO.parent / "shared") / "data"


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def _select(text: str, columns: tuple[str, ...]) -> str:
    """Keep only ``columns`` of a CSV, copying the cells verbatim (no float round trip)."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows)
    keep = [header.index(c) for c in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([row[i] for i in keep] for row in rows)
    return out.getvalue()


def _toml_value(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def build(shared: Path, out: Path, names: tuple[str, ...] | None = None) -> str:
    """Write the datasets (all, or only ``names``) into ``out``; return the manifest text."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Generated by scripts/bundle_datasets.py. sha256 is of the stored .gz file.",
             "schema_version = 1", ""]
    for spec in SPECS:
        if names is not None and spec.name not in names:
            continue
        text = _read_text(shared / spec.source_file)
        if spec.keep_columns:
            text = _select(text, spec.keep_columns)
        file_name = f"{spec.name}.csv.gz"
        blob = gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)
        (out / file_name).write_bytes(blob)
        body = text.rstrip("\n").split("\n")
        header, data = body[0].split(","), body[1:]
        table: dict[str, object] = {
            "file": file_name, "kind": spec.kind, "symbol": spec.symbol,
            "timeframe": spec.timeframe, "source": spec.source, "licence": spec.licence,
            "attribution": spec.attribution,
            "sha256": hashlib.sha256(blob).hexdigest(), "rows": len(data),
            "first": data[0].split(",", 1)[0], "last": data[-1].split(",", 1)[0],
            "columns": header, **spec.extra,
        }
        lines.append(f"[datasets.{spec.name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    manifest = "\n".join(lines)
    (out / "manifest.toml").write_text(manifest, encoding="utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=shared_data_dir())
    parser.add_argument("--out", type=Path, default=REPO / "datasets")
    args = parser.parse_args()
    build(args.shared, args.out)
    print(f"wrote {len(SPECS)} datasets and manifest.toml to {args.out}")


if __name__ == "__main__":
    main()
