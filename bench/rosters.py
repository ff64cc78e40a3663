"""Benchmark: a province's rosters read and imported as a bureau keeps them.

    .venv/bin/python bench/rosters.py                    # 200 units, 1,000 windows, 5,000 officers
    .venv/bin/python bench/rosters.py --officers 20000

Writes the units, windows and officers rosters twice — GBK CSV with Chinese
headers, CRLF and Excel's blank rows, and one .xlsx workbook with a sheet per
roster — with every unit and window referred to by name, as bureaus write
them. Times reading them (encoding detection, headers, checks; median of 3)
and the import into a fresh SQLite store (name resolution and the one
transaction). Last line: JSON ``{"officers", "csv_read_s", "xlsx_read_s",
"import_s"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import openpyxl  # noqa: E402

from collector.ingest import rosters  # noqa: E402
from collector.store import open_store  # noqa: E402

SURNAMES = "卢鲁陆路毛梅莫牟张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


def tables(n_units: int, n_windows: int, n_officers: int) -> dict[str, list[list[str]]]:
    units = [["单位编号", "单位名称", "上级单位", "负责人"], ["U0", "某省公安厅", "", "周强"]]
    units += [[f"U{i}", f"第{i}派出所", "某省公安厅", "吴敏"] for i in range(1, n_units)]
    windows = [["窗口编号", "所属单位", "窗口名称"]]
    windows += [[f"W{i}", f"第{i % (n_units - 1) + 1}派出所", f"综合窗口{i}号"] for i in range(n_windows)]
    officers = [["警号", "姓名", "单位", "窗口"]]
    for i in range(n_officers):
        w = i % n_windows
        name = SURNAMES[i % len(SURNAMES)] + GIVEN[i // len(SURNAMES) % len(GIVEN)]
        officers.append([f"{100000 + i}", name, f"第{w % (n_units - 1) + 1}派出所", f"综合窗口{w}号"])
    return {"units": units, "windows": windows, "officers": officers}


def write(out: pathlib.Path, data: dict[str, list[list[str]]]) -> tuple[dict[str, pathlib.Path], pathlib.Path]:
    csvs = {}
    for name, rows in data.items():
        text = "".join(",".join(r) + "\r\n" + (",,,\r\n" if k % 50 == 49 else "") for k, r in enumerate(rows))
        csvs[name] = out / f"{name}.csv"
        csvs[name].write_bytes(text.encode("gbk"))
    book = openpyxl.Workbook()  # not write_only: Excel's files carry a <dimension> and shared strings, as this does
    if book.active is not None:
        book.remove(book.active)
    for name, rows in data.items():
        sheet = book.create_sheet({"units": "单位", "windows": "窗口", "officers": "民警"}[name])
        for r in rows:
            sheet.append(r)
    xlsx = out / "名册.xlsx"
    book.save(xlsx)
    return csvs, xlsx


def median_time(job: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        job()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def import_all(db: pathlib.Path, read: dict[str, rosters.Roster]) -> None:
    async with open_store(str(db)) as store:
        await rosters.import_rosters(store, read)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--officers", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp)
        csvs, xlsx = write(out, tables(args.units, args.windows, args.officers))
        csv_s = median_time(lambda: rosters.read_rosters(csvs))
        xlsx_s = median_time(lambda: rosters.read_rosters({t: xlsx for t in rosters.TABLES}))
        read = rosters.read_rosters(csvs)
        assert not rosters.problems(read), rosters.problems(read)[:3]
        assert read["officers"].source.startswith("GB18030")
        t0 = time.perf_counter()
        asyncio.run(import_all(out / "store.db", read))
        import_s = time.perf_counter() - t0
    print(f"rosters: {args.units} units, {args.windows} windows, {args.officers} officers (GBK CSV and one .xlsx)")
    print(f"  read CSV (detect encoding, check)   {csv_s:8.3f} s")
    print(f"  read .xlsx                          {xlsx_s:8.3f} s")
    print(f"  import (resolve names, one commit)  {import_s:8.3f} s")
    figures = {"officers": args.officers, "csv_read_s": round(csv_s, 3), "xlsx_read_s": round(xlsx_s, 3),
               "import_s": round(import_s, 3)}  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
