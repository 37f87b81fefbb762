"""The disruption-poisoning paper's defence table, in its form, from a finished run's summaries.

One row per defence: the purified faces' L2 / PSNR to the clean ones, seconds per face, and for the
plain PGD poison and the adaptive one beside it, `prop_dist` and MSE of G(purified) against G(clean)
over the poisoned faces, the fakes' FID / KID x 100 against the clean faces' fakes and the shares
of poisoned and of clean faces the reject step drops; the Gaussian baseline's `prop_dist` last. Printed as Markdown and written to
bench/out/<name>.md.

    .venv/bin/python bench/defence_table.py results/stargan_demo --name defences_stargan
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent / "out"


def _cell(value: float, digits: int) -> str:
    return "—" if pd.isna(value) else f"{value:.{digits}f}"


def defence_table(results: Path, rate: str) -> str:
    purified = pd.read_csv(results / "purified" / "summary.tsv", sep="\t")
    distance = pd.read_csv(results / "fakes" / "distance.tsv", sep="\t")
    generator = pd.read_csv(results / "poisoned" / "summary.tsv", sep="\t")["generator"].iloc[0]
    purified = purified[purified["poison_rate"] == float(rate)]
    distance = distance[(distance["poison_rate"] == float(rate)) & (distance["generator"] == generator)]

    def figures(attack: str, defence: str) -> list[str]:
        row = purified[(purified["attack"] == attack) & (purified["defence"] == defence)]
        fid = distance[(distance["attack"] == attack) & (distance["defence"] == defence)]
        if row.empty:
            return ["—"] * 4
        row = row.iloc[0]
        fid_kid = "—" if fid.empty else f"{fid['fid'].iloc[0]:.1f} / {100 * fid['kid'].iloc[0]:.1f}"
        return [f"**{_cell(row['prop_dist_purified'], 2)}**", _cell(row["mse_g_purified"], 3), fid_kid,
                f"{_cell(row['reject_rate_poisoned'], 2)} / {_cell(row['reject_rate_clean'], 2)}"]

    lines = [f"generator {generator}, poison rate {rate}",
             "",
             "| defence | L2 / PSNR to clean | s / face | PGD: `prop_dist` | MSE G | FID / KID×100 | rejected (poisoned / "
             "clean) | adaptive: `prop_dist` | MSE G | FID / KID×100 | rejected | Gaussian: `prop_dist` |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for defence in dict.fromkeys(purified["defence"]):
        pgd = purified[(purified["attack"] == "pgd") & (purified["defence"] == defence)]
        if pgd.empty:
            continue
        first = pgd.iloc[0]
        gaussian = purified[(purified["attack"] == "gaussian") & (purified["defence"] == defence)]
        lines.append("| " + " | ".join([
            defence, f"{_cell(first['pur_l2_vs_clean'], 4)} / {_cell(first['pur_psnr_vs_clean'], 1)} dB",
            _cell(first["seconds_per_image"], 3), *figures("pgd", defence), *figures("adaptive_pgd", defence),
            _cell(gaussian["prop_dist_purified"].iloc[0], 2) if not gaussian.empty else "—"]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a dataset's results folder, e.g. results/stargan_demo")
    parser.add_argument("--rate", default="0.5", help="the poison rate of the rows (default 0.5)")
    parser.add_argument("--name", default="defence_table", help="output file name under bench/out/")
    args = parser.parse_args()
    table = defence_table(args.results, args.rate)
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / f"{args.name}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
