"""``glasslog import --url``: the events go to a real server, as ``ingest --url`` sends them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from glasslog.cli import main
from glasslog.log import Log
from tests.importers.conftest import AWS_LOGS, K8S_LOG
from tests.server.conftest import POLICY, live, make_site

IMPORTER_POLICY = POLICY.replace(
    'services = ["payments", "billing-*"]', 'services = ["kubernetes", "aws.*"]'
)
"""The test policy, with a writer that may write what the importers produce."""


def test_an_import_to_a_server_is_stored_once(tmp_path: Path) -> None:
    """Both formats go to a live server and are stored; sent again, all are duplicates."""
    assert IMPORTER_POLICY != POLICY
    site = make_site(tmp_path, None, policy=IMPORTER_POLICY)
    with live(site) as url:
        for fmt, path, skipped in (("k8s-audit", K8S_LOG, 8), ("cloudtrail", AWS_LOGS, 1)):
            for expected in ({"accepted": 7, "duplicates": 0}, {"accepted": 0, "duplicates": 7}):
                result = CliRunner().invoke(main, [
                    "import", "--format", fmt, str(path), "--url", url,
                    "--key", site.keys["writer"], "--data", str(tmp_path / "unused"),
                ])  # fmt: skip
                assert result.exit_code == 0, result.output
                assert json.loads(result.stdout) == {**expected, "skipped": skipped,
                                                     "rejected": []}  # fmt: skip
        refused = CliRunner().invoke(main, [
            "import", "--format", "k8s-audit", str(K8S_LOG), "--url", url,
            "--key", site.keys["dev"],
        ])  # fmt: skip
        assert refused.exit_code == 1
        assert "ingest" in refused.stderr
    with Log.open(site.data) as log:
        assert log.store.size() == 14
        assert len(log.search("service:aws.s3 outcome:denied").events) == 1
