"""`myomap quarantine list|show|retry`: a data manager fixes the manifest and retries, no re-upload."""
from __future__ import annotations

from click.testing import CliRunner
from conftest import drop, fixture

from flows.cli import main
from flows.nightly import run_night
from warehouse import catalog

MANIFEST = """
site: oslo
subjects: [{id: OSL9}]
sessions:
  - {id: OSL9-S1, subject: OSL9, condition: fresh, task: walk, files: ["*.csv"]}
"""


def test_fix_manifest_then_retry_ingests_the_channel(lake):
    d = drop(lake, "oslo", {"rec.csv": fixture("delsys/truncated_trigno_sample.csv")}, MANIFEST)
    run_night(lake.lake, quiet=True)
    runner = CliRunner()
    out = runner.invoke(main, ["quarantine", "list", "--lake", lake.lake])
    assert out.exit_code == 0 and "unmapped_channel" in out.output and "rec.csv#Mini sensor 10: EMG 10" in out.output
    show = runner.invoke(main, ["quarantine", "show", "rec.csv#Mini sensor 10: EMG 10", "--lake", lake.lake])
    assert show.exit_code == 0 and "channels:" in show.output  # says what to do
    (d / "rec.csv").unlink()  # the inbox copy is gone: the retry reads the kept original
    (d / "manifest.yaml").write_text(MANIFEST + 'channels:\n  "Mini sensor 10: EMG 10": {muscle: soleus, side: L}\n')
    r = runner.invoke(main, ["quarantine", "retry", "--site", "oslo", "--lake", lake.lake])
    assert r.exit_code == 0, r.output
    con = catalog.connect(lake, read_only=True)
    assert con.execute("SELECT muscle, side, round(rate_hz, 3) FROM emg_channels").fetchall() == [
        ("soleus", "L", 1259.259)]
    assert con.execute("SELECT count(*) FROM quarantine WHERE path = 'rec.csv#Mini sensor 10: EMG 10' "
                       "AND resolved_at IS NOT NULL").fetchone()[0] == 1
    assert con.execute("SELECT status FROM files").fetchall() == [("ingested",)]
    again = runner.invoke(main, ["quarantine", "list", "--lake", lake.lake])
    assert "Mini sensor 10" not in again.output


def test_every_command_has_help():
    runner = CliRunner()
    for args in (["--help"], ["ingest", "--help"], ["sql", "--help"], ["status", "--help"], ["demo", "--help"],
                 ["quarantine", "--help"], ["quarantine", "retry", "--help"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 0 and "Usage" in r.output, args
