"""Turn bench results into a markdown table, a chart and a profile summary.

python bench/report.py bench/results/latest/results.json   # rewrite results.md and chart
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# Innermost matching frame decides where a sample's time goes.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("hashlib / uuid", r"hashlib|uuid\.py"),
    ("json encode/decode", r"/json/|orjson"),
    ("pydantic validation", r"pydantic|newstore/"),
    ("logging", r"/logging/|structlog|observability/logs\.py"),
    ("asyncpg (driver, incl. encoding parameters)", r"asyncpg"),
    ("SQLAlchemy (compile, execute, pool, types)", r"sqlalchemy"),
    ("ledger effects.translate", r"ledger/effects\.py"),
    ("ERP document build", r"ledger/documents\.py"),
    ("other product code", r"inventory_sync/"),
    ("HTTP: uvicorn / starlette / fastapi", r"uvicorn|starlette|fastapi|httptools|h11"),
    ("asyncio / anyio / threads", r"asyncio|anyio|threading|concurrent"),
)

KEY_FUNCTIONS = (
    "IntakeEndpoint._answer (inventory_sync/api/intake.py)",
    "receive (inventory_sync/intake/service.py)",
    "classify (inventory_sync/intake/classify.py)",
    "read (inventory_sync/newstore/validation.py)",
    "validate_json (pydantic/type_adapter.py)",
    "translate (inventory_sync/ledger/effects.py)",
    "build (inventory_sync/ledger/documents.py)",
    "_store (inventory_sync/intake/service.py)",
    "PostgresStore.record_event (inventory_sync/storage/postgres.py)",
    "Pool.fetch (asyncpg/pool.py)",
    "RequestIdMiddleware.__call__ (inventory_sync/api/request_id.py)",
)

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def server_side(run: dict[str, Any]) -> str:
    """Checkpoints, WAL volume and WAL flush stalls of one sustained run (older results have
    none of them)."""
    if "wal_flush_stalls" not in run or run.get("wal_flush_stalls_error"):
        return f"not recorded ({run.get('wal_flush_stalls_error') or 'older results'})"
    stalls = ", ".join(f"{ms} ms at {at:.1f} s" for at, ms in run["wal_flush_stalls"]) or "none"
    slow = [
        f"{second} s" for second, ms in enumerate(run.get("worst_ms_per_second", [])) if ms > 25
    ]
    return (
        f"{run['checkpoints']} checkpoint(s), WAL {run['wal_kb_per_event']:.1f} KB per event, "
        f"commits waiting 50 ms or more for the WAL flush: {stalls}; seconds with an answer "
        f"over 25 ms: {', '.join(slow) or 'none'}"
    )


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text.strip())
    if match is None:
        return text.strip(), ""
    path = match["file"]
    for marker in ("site-packages/", "src/", "lib/python3.11/", "lib/python3.12/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return match["func"], path


def summarise_profile(collapsed: str) -> dict[str, Any]:
    """py-spy `--format raw` (collapsed stacks) to shares of CPU samples."""
    total = 0
    by_category: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(part) for part in stack.split(";")]
        names = [f"{func} ({path})" for func, path in frames]
        for name in set(names):
            inclusive[name] += count
        leaf[names[-1]] += count
        category = "other (C extensions, interpreter)"
        for func, path in reversed(frames):
            found = next((label for label, pattern in CATEGORIES if re.search(pattern, path)), None)
            if found is not None:
                category = found
                break
            del func
        by_category[category] += count
    if total == 0:
        return {"samples": 0}

    def share(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, round(100 * value / total, 1)) for name, value in counter.most_common(n)]

    return {
        "samples": total,
        "categories_pct": share(by_category, 20),
        "key_functions_pct": [
            (name, round(100 * inclusive[name] / total, 1))
            for name in KEY_FUNCTIONS
            if inclusive[name]
        ],
        "top_inclusive_pct": share(inclusive, 40),
        "top_self_pct": share(leaf, 25),
    }


def _ms(cell: dict[str, Any]) -> str:
    return "/".join(f"{cell[k]:.0f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))


def _by_cell(results: dict[str, Any], app: str) -> dict[tuple[int, int, float], Any]:
    return {(c["items"], c["connections"], c["dup"]): c for c in results.get(app, [])}


def _ratio(cell: dict[str, Any], other: dict[str, Any] | None, bold: bool = False) -> str:
    if not other:
        return "-"
    text = f"{cell['events_s'] / other['events_s']:.2f}"
    return f"**{text}**" if bold else text


def table(results: dict[str, Any]) -> str:
    """Product against the yardstick (the ratio that counts), the yardstick with the product's
    position index (what that index alone costs it) and the earlier baseline."""
    yardstick = _by_cell(results, "yardstick")
    indexed = _by_cell(results, "indexed")
    baseline = _by_cell(results, "baseline")
    rows = [
        "| items/event | conns | dups | product ev/s | yardstick ev/s | **ratio** | yardstick "
        "+ position index ev/s | its share of the yardstick | earlier baseline ev/s | ratio to "
        "it | product p50/p90/p99/max ms | yardstick p50/p90/p99/max ms | errors p/y/i/b | "
        "product RSS max MB | acked all stored |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---|",
    ]
    for cell in results.get("product", []):
        key = (cell["items"], cell["connections"], cell["dup"])
        ref, idx, base = yardstick.get(key), indexed.get(key), baseline.get(key)
        ok = all(c["ack_check"] and c["ledger_check"] for c in (cell, ref, idx, base) if c)
        errors = "/".join(str(c["errors"]) if c else "-" for c in (cell, ref, idx, base))
        rows.append(
            f"| {cell['items']} | {cell['connections']} | {cell['dup']:.0%} | "
            f"{cell['events_s']:.0f} | {ref['events_s'] if ref else 0:.0f} | "
            f"{_ratio(cell, ref, bold=True)} | {idx['events_s'] if idx else 0:.0f} | "
            f"{_ratio(idx, ref) if idx else '-'} | {base['events_s'] if base else 0:.0f} | "
            f"{_ratio(cell, base)} | {_ms(cell)} | {_ms(ref) if ref else '-'} | {errors}"
            f" | {cell['rss_max_mb'] or 0:.0f} | {'yes' if ok else 'NO'} |"
        )
    return "\n".join(rows)


def extras(results: dict[str, Any]) -> str:
    lines = []
    floor = results.get("floor", [])
    if floor:
        parts = ", ".join(
            f"{c['connections']} conns {c['events_s']:.0f} req/s (p99 {c['p99_ms']:.1f} ms)"
            for c in floor
        )
        lines.append(f"- HTTP floor (yardstick `POST /noop`, 50-item body): {parts}")
    steal = [
        cell["steal_percent"]
        for app in ("product", "yardstick", "indexed", "baseline")
        for cell in results.get(app, [])
        if "steal_percent" in cell
    ]
    if steal:
        lines.append(
            f"- CPU steal (time the hypervisor gave other guests) during the matrix cells: "
            f"{min(steal):.1f}-{max(steal):.1f} %, median {sorted(steal)[len(steal) // 2]:.1f} %"
        )
    peak = results.get("peak")
    if peak:
        rates = ", ".join(f"{rate:.0f}" for rate in peak["events_s"])
        lines.append(
            f"- Product's max rate at 50 items, 16 connections, just before the sustained run: "
            f"{rates} ev/s, median **{peak['median']:.0f}**"
        )
    sus = results.get("sustained")
    if sus:
        lines.append(
            f"- Sustained {sus['elapsed_s']:.0f} s at {sus['rate_target']:.0f} ev/s (half the "
            f"product's max at 50 items), achieved {sus['rate_achieved']:.0f} ev/s: p50 "
            f"{sus['p50_ms']:.1f} ms, p90 {sus['p90_ms']:.1f} ms, **p99 {sus['p99_ms']:.1f} "
            f"ms**, max {sus['max_ms']:.0f} ms, answers over 1 s: **{sus['over_1s']}**, "
            f"errors {sus['errors']}, CPU steal {sus.get('steal_percent', float('nan')):.1f} %"
        )
        lines.append(
            f"- Acknowledged events checked by payload id: {sus['acked']}, missing in the "
            f"database: **{sus['acked_missing_in_db']}**, with a wrong number of ledger rows: "
            f"{sus['acked_with_wrong_ledger_rows']}"
        )
        lines.append(f"- Product's database during the sustained run: {server_side(sus)}")
        lines.append(
            f"- Product RSS during the sustained run: first 10 s {sus['rss_first_10s_mb']:.0f} "
            f"MB, last 10 s {sus['rss_last_10s_mb']:.0f} MB, max {sus['rss_max_mb']:.0f} MB"
        )
    reference = results.get("sustained_reference") or results.get("sustained_baseline")
    if reference:
        lines.append(
            f"- Yardstick at the same rate for {reference['elapsed_s']:.0f} s: p50 "
            f"{reference['p50_ms']:.1f} ms, p90 {reference['p90_ms']:.1f} ms, p99 "
            f"{reference['p99_ms']:.1f} ms, max {reference['max_ms']:.0f} ms, CPU steal "
            f"{reference['steal_percent']:.1f} %; {server_side(reference)}"
        )
    pre = results.get("prefilled")
    if pre:
        pairs = pre.get("cells") or {"empty": [pre["empty"]], "prefilled": [pre["prefilled"]]}

        def speeds(side: str) -> str:
            return " and ".join(f"{c['events_s']:.0f}" for c in pairs[side])

        def checkpoints(side: str) -> str:
            return " and ".join(str(c.get("checkpoints", "?")) for c in pairs[side])

        def p99(side: str) -> str:
            return ", ".join(f"{c['p99_ms']:.0f}" for c in pairs[side])

        lines.append(
            f"- Ledger pre-filled with {pre['rows']:,} rows vs empty (alternating, each cell "
            f"from a checkpoint): {speeds('prefilled')} ev/s vs {speeds('empty')} ev/s, "
            f"**ratio {pre['ratio']:.2f}** of the means (p99 {p99('prefilled')} vs "
            f"{p99('empty')} ms; checkpoints during the cells: {checkpoints('prefilled')} and "
            f"{checkpoints('empty')})"
        )
    for drain in (results.get("drain"), results.get("drain_concurrency_16")):
        if not drain:
            continue
        if drain.get("documents_s") is not None:
            lines.append(
                f"- Worker drain ({drain['how']}): {drain['delivered']} documents, "
                f"**{drain['documents_s']:.0f} documents/s** "
                f"({drain['documents_s_including_startup']:.0f}/s including start-up)"
            )
        else:
            lines.append(f"- Worker drain: not measured ({drain['how']})")
    won = results.get("worker_on")
    if won:
        after = won["drain_after_run"]
        rate = after.get("documents_s")
        drained = f"{rate:.0f} documents/s" if won["delivered_during_run"] and rate else "none"

        def each(side: dict[str, Any]) -> str:
            cells = side.get("cells")
            return " and ".join(f"{c['events_s']:.0f}" for c in cells) + ", mean " if cells else ""

        lines.append(
            f"- Worker on vs off (50 items, 16 conns, alternating): on {each(won['on'])}"
            f"{won['on']['events_s']:.0f} vs off {each(won['off'])}{won['off']['events_s']:.0f} "
            f"ev/s, **ratio {won['ratio']:.2f}**; documents delivered during the last run: "
            f"{won['delivered_during_run']}; drain by serve's worker after it: {drained}"
        )
    procs = results.get("processes")
    if procs:
        each = {
            str(n): " and ".join(f"{c['events_s']:.0f}" for c in cells)
            for n, cells in procs["cells"].items()
        }
        lines.append(
            f"- `serve --workers 2` vs 1 (50 items, 16 conns, alternating): {each.get('2')} vs "
            f"{each.get('1')} ev/s, **ratio {procs['ratio']:.2f}** of the means"
        )
    return "\n".join(lines)


def profile_md(results: dict[str, Any]) -> str:
    prof = results.get("profile")
    if not prof or not prof.get("samples"):
        return f"Profile: {prof.get('skipped', 'none') if prof else 'none'}"
    lines = [
        f"Profile: {prof['samples']} samples of the product process's Python (py-spy --gil, "
        f"200 Hz) at 50 items/event, 16 connections "
        f"({prof.get('events_s_while_profiling', 0):.0f} ev/s while sampled).",
        "",
        "| where (innermost frame) | % of samples |",
        "|---|---:|",
        *(f"| {name} | {pct} |" for name, pct in prof["categories_pct"]),
        "",
        "| function (inclusive) | % of samples |",
        "|---|---:|",
        *(f"| `{name}` | {pct} |" for name, pct in prof["key_functions_pct"]),
    ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> str:
    """Events/s by items per event and by connections (0% duplicates); PNG or ASCII."""
    series: dict[tuple[str, int], dict[int, float]] = {}
    for app in ("product", "yardstick", "baseline"):
        for cell in results.get(app, []):
            if cell["dup"] == 0.0:
                series.setdefault((app, cell["connections"]), {})[cell["items"]] = cell["events_s"]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ascii_chart(series)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=90)
    for (app, conns), points in sorted(series.items()):
        xs = sorted(points)
        left.plot(
            xs,
            [points[x] for x in xs],
            marker="o",
            linestyle="-" if app == "product" else "--",
            label=f"{app}, {conns} conns",
        )
    for cell in results.get("floor", []):
        left.axhline(cell["events_s"], color="grey", linewidth=0.6)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("items per event")
    left.set_ylabel("events/s")
    left.set_title("events/s by items per event (0% dups; grey: HTTP floor)", fontsize=9)
    left.legend(fontsize=7)
    items = sorted({x for points in series.values() for x in points})
    width = 0.8 / max(1, len(series))
    for index, (app, conns) in enumerate(sorted(series)):
        points = series[(app, conns)]
        right.bar(
            [i + (index - (len(series) - 1) / 2) * width for i in range(len(items))],
            [points.get(x, 0) for x in items],
            width,
            label=f"{app}, {conns} conns",
        )
    right.set_xticks(range(len(items)), [f"{x} items" for x in items])
    right.set_yscale("log")
    right.set_ylabel("events/s")
    right.set_title("events/s by connections", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"![events/s by items per event and by connections]({path.name})"


def ascii_chart(series: dict[tuple[str, int], dict[int, float]]) -> str:
    peak = max((v for points in series.values() for v in points.values()), default=1.0)
    lines = ["```"]
    for (app, conns), points in sorted(series.items()):
        for items, value in sorted(points.items()):
            bar = "#" * max(1, round(50 * value / peak))
            lines.append(f"{app:8s} c{conns:<2d} {items:3d} items {value:7.0f} {bar}")
    lines.append("```")
    return "\n".join(lines)


def write(results: dict[str, Any], out: Path) -> None:
    machine = results.get("machine", {})
    text = "\n\n".join(
        [
            f"Command: `{results.get('command')}` · {machine.get('nproc')} cores "
            f"{machine.get('cpu')}, {machine.get('memory')}, PostgreSQL "
            f"{machine.get('postgresql')}, Python {machine.get('python')}, commit "
            f"{machine.get('git_commit')}, {machine.get('started_at')}, load average at start "
            f"{_load(machine.get('load_average_at_start'))} and end "
            f"{_load(machine.get('load_average_at_end'))}",
            table(results),
            extras(results),
            chart(results, out / "chart.png"),
            profile_md(results),
        ]
    )
    (out / "results.md").write_text(text + "\n")


def _load(value: Any) -> str:
    return "/".join(f"{v:.2f}" for v in value) if value else "?"


if __name__ == "__main__":
    source = Path(sys.argv[1])
    write(json.loads(source.read_text()), source.parent)
    print(source.parent / "results.md")
