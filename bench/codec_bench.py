"""Codec encode+decode throughput vs plain fastavro on the same records, in the same process.

    python bench/codec_bench.py [--records 20000] [--rounds 7]

Baseline: fastavro.schemaless_writer / schemaless_reader with the same parsed schema into
a BytesIO. The codec adds the single-object header (2 + 8 bytes) on encode and the
fingerprint lookup on decode, and the cheap pre-encode checks (soma.contracts.fastcheck). Rounds
alternate between the two; the best round of each is reported (the least disturbed by the
rest of the machine), with the ratio of the medians beside it. Target: codec >= 0.8x baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.samples import sample
from soma.settings import load_settings


def plain_round_trip(parsed: Any, records: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for record in records:
        buffer = BytesIO()
        schemaless_writer(buffer, parsed, record)
        buffer.seek(0)
        schemaless_reader(buffer, parsed, None)
    return time.perf_counter() - started


def codec_round_trip(codec: Codec, topic: str, records: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for record in records:
        codec.decode(topic, codec.encode(topic, record))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    catalog = load_catalog()
    codec = Codec(catalog, load_settings())
    print(f"machine: {describe()}")
    print(f"{'topic':<24}{'fastavro rec/s':>16}{'codec rec/s':>14}{'ratio':>8}{'median ratio':>14}")
    for topic in ("chat.messages", "cog.predictor_updates", "tool.results"):
        records = [codec.fill_defaults(topic, sample(topic, n=n)) for n in range(args.records)]
        parsed = codec.schema(topic).parsed
        plain, ours = [], []
        for _ in range(args.rounds):
            plain.append(plain_round_trip(parsed, records))
            ours.append(codec_round_trip(codec, topic, records))
        plain_rate, codec_rate = args.records / min(plain), args.records / min(ours)
        median_ratio = statistics.median(plain) / statistics.median(ours)
        ratio = codec_rate / plain_rate
        print(f"{topic:<24}{plain_rate:>16,.0f}{codec_rate:>14,.0f}{ratio:>8.2f}{median_ratio:>14.2f}")


if __name__ == "__main__":
    main()
