"""EMG sample storage: bytes/sample on disk and one-channel read-back time.

Workload: 8 trials x 16 channels x 30 s x 2 kHz of ADC-quantised EMG written through the
lake (DuckLake, zstd, Parquet v2). Baseline measured in the same run: the same samples
written by plain pyarrow (float32, snappy, default encodings). Budget (issue 2):
<= 2 bytes/sample and one channel of one trial back into numpy in < 50 ms.
Run: .venv/bin/python bench/storage.py
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from warehouse import catalog  # noqa: E402
from warehouse.analysis import derived
from warehouse.ingest.tables import emg_samples_table  # noqa: E402
from warehouse.settings import get_settings  # noqa: E402

N_TRIALS, N_CH, RATE, DUR = 8, 16, 2000.0, 30.0


def make_trial(rng, n):
    t = np.arange(n) / RATE
    lsb = 11.0 / 65536
    out = []
    for ch in range(N_CH):
        env = 0.01 + 0.4 * np.clip(np.sin(2 * np.pi * t / 1.1 + ch), 0, None) ** 4
        out.append(np.round(rng.normal(0, 1, n) * env / lsb) * lsb)
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    n = int(RATE * DUR)
    with tempfile.TemporaryDirectory() as tmp:
        s = get_settings(str(Path(tmp) / "lake"))
        con = catalog.connect(s)
        base_bytes = 0
        for i in range(N_TRIALS):
            tbl = emg_samples_table(f"t{i}", make_trial(rng, n))
            con.register("x", tbl)
            con.execute("INSERT INTO emg_samples SELECT * FROM x")
            pq.write_table(tbl, Path(tmp) / f"base{i}.parquet")
            base_bytes += (Path(tmp) / f"base{i}.parquet").stat().st_size
        lake_bytes = sum(p.stat().st_size for p in Path(s.zone("tables")).rglob("*.parquet")
                         if "emg_samples" in str(p))
        total = N_TRIALS * N_CH * n
        ro = catalog.connect(s, read_only=True)
        times = []
        for k in range(40):
            t0 = time.perf_counter()
            x = derived.read_channel(ro, f"t{k % N_TRIALS}", k % N_CH)
            times.append((time.perf_counter() - t0) * 1000)
            assert len(x) == n
        base_times = []
        for k in range(40):
            t0 = time.perf_counter()
            tb = pq.read_table(Path(tmp) / f"base{k % N_TRIALS}.parquet", columns=["channel", "emg_mv"])
            ch = tb.column("channel").to_numpy()
            _ = tb.column("emg_mv").to_numpy()[ch == k % N_CH]
            base_times.append((time.perf_counter() - t0) * 1000)
    print(f"samples={total:,}")
    print(f"lake_bytes_per_sample={lake_bytes / total:.2f} (budget 2.0)")
    print(f"baseline_plain_parquet_bytes_per_sample={base_bytes / total:.2f}")
    print(f"read_one_channel_ms_median={statistics.median(times):.1f} (budget 50)")
    print(f"baseline_read_one_channel_ms_median={statistics.median(base_times):.1f}")
    print(f"size_ratio_vs_plain_parquet={base_bytes / lake_bytes:.2f}")


if __name__ == "__main__":
    main()
