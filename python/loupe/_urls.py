"""Links into the web UI.

The same rule as the Rust side's one URL builder (``loupe_model::run_url`` in
``crates/loupe-model/src/ui_url.rs``): a run's page is ``{server}/r/{id}``,
with the id percent-encoded as one path segment the way the UI's router
decodes it (``encodeURIComponent``). The UI's end-to-end test follows the
links both print.
"""

from urllib.parse import quote

# encodeURIComponent leaves these unescaped; ``quote`` always keeps ``_.-~``.
_SEGMENT_SAFE = "!*'()"


def run_url(server: str, run_id: str) -> str:
    """The UI page of run ``run_id`` on the server at ``server``."""
    return "%s/r/%s" % (server.rstrip("/"), quote(run_id, safe=_SEGMENT_SAFE))


def project_url(server: str, project: str) -> str:
    """The runs table of ``project``."""
    return "%s/p/%s" % (server.rstrip("/"), quote(project, safe=_SEGMENT_SAFE))
